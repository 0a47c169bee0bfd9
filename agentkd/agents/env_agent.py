"""Environment agents as LangGraph graphs: reset → policy → environment → … → finish.

`env_agent_graph` returns the uncompiled `StateGraph`, so an agent author can add nodes (a
reflection step, a tool call, a guard) or rewire edges before compiling; `build_env_agent`
compiles it. The recorder lives in the environment node: whatever policy or extra nodes run, every
step lands in the episode's `Trajectory`, which the finish node closes.

Policies are batched (`Policy.act(inputs)`). One graph runs one episode; run many with
`ainvoke` concurrently and wrap the policy in `BatchingPolicy`, which gathers the concurrent
requests into one `act` call — the way an inference server batches its clients.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, TypedDict

from agentkd.agents.journal import EpisodeJournal
from agentkd.env import Env
from agentkd.policies.base import Decision, Policy, PolicyInput
from agentkd.schema import Step, Task, Trajectory


class EpisodeState(TypedDict, total=False):
    task: Task
    seed: int
    observation: str
    admissible: list[str] | None
    decision: Decision | None
    reward: float
    done: bool
    trajectory: Trajectory
    principles: list[str]
    clock: float  # perf_counter() at reset, for the trajectory's wall time


class BatchingPolicy:
    """Gathers `decide` calls from concurrent episodes into batched `act` calls on the wrapped policy.

    Episodes built by `env_agent_graph` register while they run, so a batch goes out as soon as every
    running episode has asked (or `max_batch` is reached), and at the latest `max_wait_s` after its
    first request — environment steps finish at slightly different times, and waiting a moment for
    the stragglers is what turns many small forward passes into one large one.
    """

    def __init__(self, policy: Policy, max_batch: int = 64, max_wait_s: float = 0.005):
        self.policy = policy
        self.info = policy.info
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.active = 0  # episodes currently running with this policy
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self.batches: list[int] = []  # sizes of the batches sent, for tests and benchmarks

    def act(self, inputs: list[PolicyInput]) -> list[Decision]:
        return self.policy.act(inputs)

    async def decide(self, inp: PolicyInput) -> Decision:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._worker is None or self._worker.get_loop() is not loop:
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._serve())
        future = loop.create_future()
        await self._queue.put((inp, future))
        return await future

    async def _gather(self) -> list:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        deadline = loop.time() + self.max_wait_s
        while len(batch) < min(self.max_batch, max(1, self.active)):
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _serve(self) -> None:
        while True:
            batch = await self._gather()
            self.batches.append(len(batch))
            # A policy with `act_each` fails only the requests that failed; `act` fails the whole batch.
            act = getattr(self.policy, "act_each", self.policy.act)
            try:
                decisions = await asyncio.to_thread(act, [inp for inp, _ in batch])
            except Exception as exc:  # a failing policy fails its episodes, not the server loop
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), decision in zip(batch, decisions, strict=True):
                if future.done():
                    continue
                if isinstance(decision, Exception):
                    future.set_exception(decision)
                else:
                    future.set_result(decision)


async def _decide(policy: Policy, inp: PolicyInput) -> Decision:
    if isinstance(policy, BatchingPolicy):
        return await policy.decide(inp)
    return (await asyncio.to_thread(policy.act, [inp]))[0]


def env_agent_graph(env: Env, policy: Policy, *, max_steps: int = 50,
                    on_finish: Callable[[Trajectory], Any] | None = None, journal: EpisodeJournal | None = None):
    """The uncompiled episode graph (nodes: reset, policy, env, finish).

    With a ``journal``, every step is journaled as it is played and an episode with a journal resumes after its
    last journaled step (:mod:`agentkd.agents.journal`); the caller deletes the journal once the trajectory is
    stored."""
    from langgraph.graph import END, START, StateGraph

    # Model policies price their own calls (prices never enter the policy's identity or trajectory ids).
    price = getattr(policy.policy if isinstance(policy, BatchingPolicy) else policy, "cost_usd", None)

    def reset(state: EpisodeState) -> EpisodeState:
        task = state["task"]
        started = time.perf_counter()
        observation = env.reset(task)
        trajectory = Trajectory.start(task, policy.info, seed=state.get("seed", 0))
        if isinstance(policy, BatchingPolicy):
            policy.active += 1
        resumed = journal.resume(env, task, trajectory, observation) if journal is not None else None
        if resumed is not None:  # the journaled steps replayed: go on after them
            return {"clock": started - resumed.elapsed_s, "observation": resumed.observation,
                    "admissible": resumed.admissible, "reward": resumed.reward, "trajectory": trajectory,
                    "done": resumed.done or len(trajectory.steps) >= max_steps, "decision": None}
        return {"clock": started, "observation": observation, "admissible": env.admissible_actions(),
                "reward": 0.0, "done": False, "trajectory": trajectory, "decision": None}

    async def act(state: EpisodeState) -> EpisodeState:
        inp = PolicyInput(task=state["task"], observation=state["observation"], history=state["trajectory"].steps,
                          admissible_actions=state["admissible"], env=env, principles=state.get("principles", []),
                          seed=state.get("seed", 0))
        return {"decision": await _decide(policy, inp)}

    def step(state: EpisodeState) -> EpisodeState:
        d = state["decision"]
        trajectory = state["trajectory"]
        observation, reward, done, info = env.step(d.action)
        admissible = env.admissible_actions()
        fields = d.step_fields()
        fields["valid"] = d.valid and bool(info.get("admissible", True))
        if info.get("won") is not None:
            fields["info"]["won"] = info["won"]
        trajectory.steps.append(Step(
            index=len(trajectory.steps), observation=state["observation"], next_observation=observation,
            reward=reward, done=done, admissible_actions=state["admissible"], **fields,
        ))
        if price is not None:
            trajectory.cost_usd += price(d)
        if journal is not None:
            journal.record(trajectory, time.perf_counter() - state["clock"])
        done = done or len(trajectory.steps) >= max_steps
        return {"observation": observation, "admissible": admissible, "reward": reward, "done": done}

    def finish(state: EpisodeState) -> EpisodeState:
        if isinstance(policy, BatchingPolicy):
            policy.active -= 1
        trajectory = state["trajectory"]
        trajectory.finish(success=state["reward"] > 0, reward=state["reward"])
        trajectory.wall_time_s = time.perf_counter() - state["clock"]
        if on_finish is not None:
            on_finish(trajectory)
        return {"trajectory": trajectory}

    graph = StateGraph(EpisodeState)
    graph.add_node("reset", reset)
    graph.add_node("policy", act)
    graph.add_node("env", step)
    graph.add_node("finish", finish)
    graph.add_edge(START, "reset")
    def route(state: EpisodeState) -> str:  # after reset (a resumed episode may be over) and after each step
        return "finish" if state["done"] else "policy"

    graph.add_conditional_edges("reset", route, ["finish", "policy"])
    graph.add_edge("policy", "env")
    graph.add_conditional_edges("env", route, ["finish", "policy"])
    graph.add_edge("finish", END)
    return graph


def build_env_agent(env: Env, policy: Policy, *, max_steps: int = 50,
                    on_finish: Callable[[Trajectory], Any] | None = None, journal: EpisodeJournal | None = None):
    """A compiled LangGraph agent that plays one episode per `invoke`/`ainvoke({"task": ..., "seed": ...})`."""
    return env_agent_graph(env, policy, max_steps=max_steps, on_finish=on_finish, journal=journal).compile()


def recursion_limit(max_steps: int) -> int:
    """LangGraph counts node visits; an episode visits policy and env once per step, plus reset and finish."""
    return 2 * max_steps + 10


def trace_config(task: Task, seed: int = 0, tags: Sequence[str] = (), metadata: dict[str, Any] | None = None,
                 callbacks: Any = None) -> dict[str, Any]:
    """The run's name, tags and metadata as LangSmith (or any LangChain tracer) shows and searches them:
    ``household:valid_unseen/0001``, tags ``agentkd``, the env, the split and the caller's (e.g. ``eval``,
    ``sc@8``), metadata with the task id, type, split and seed."""
    config: dict[str, Any] = {
        "run_name": f"{task.env}:{task.task_id}",
        "tags": ["agentkd", task.env, task.split, *tags],
        "metadata": {"task_id": task.task_id, "task_type": task.task_type, "split": task.split, "env": task.env,
                     "seed": seed, **(metadata or {})},
    }
    if callbacks is not None:
        config["callbacks"] = callbacks
    return config


async def run_episode(agent, task: Task, seed: int = 0, max_steps: int = 50, *, tags: Sequence[str] = (),
                      metadata: dict[str, Any] | None = None, callbacks: Any = None) -> Trajectory:
    config = trace_config(task, seed, tags, metadata, callbacks) | {"recursion_limit": recursion_limit(max_steps)}
    state = await agent.ainvoke({"task": task, "seed": seed}, config=config)
    return state["trajectory"]


def play_episode(env: Env, policy: Policy, task: Task, seed: int = 0, max_steps: int = 50) -> Trajectory:
    """One recorded episode, synchronously (scripts, tests, benchmarks); `env` is left at its end state."""
    agent = build_env_agent(env, policy, max_steps=max_steps)
    return asyncio.run(run_episode(agent, task, seed=seed, max_steps=max_steps))
