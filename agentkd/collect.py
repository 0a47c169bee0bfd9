"""Trajectory collection: run a teacher on a split, concurrently, into an experience store.

Episode `i` of a run plays task `i % len(split)` with seed `i // len(split)`, so a run is fully
described by its arguments and every trajectory id is deterministic (task + policy + seed). A
restarted run asks the store which of its ids already exist and plays only the others: a run killed
at any point (even with SIGKILL) and started again ends with exactly the requested trajectories,
none lost and none duplicated. Finished trajectories are written in batches from a background
thread while episodes keep playing; a batch that cannot reach a Chroma server is spooled to JSONL
by the store and imported by the next run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agentkd.agents.env_agent import BatchingPolicy, build_env_agent, run_episode
from agentkd.envs import load_tasks, make_env
from agentkd.policies.base import Policy
from agentkd.schema import Task, Trajectory, trajectory_id
from agentkd.store.protocol import TrajectoryStore


@dataclass
class CollectSummary:
    requested: int
    already_stored: int
    played: int = 0
    succeeded: int = 0
    steps: int = 0
    wall_time_s: float = 0.0
    stored_total: int = 0
    batch_sizes: list[int] = field(default_factory=list)

    @property
    def episodes_per_s(self) -> float:
        return self.played / self.wall_time_s if self.wall_time_s else 0.0

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_time_s if self.wall_time_s else 0.0


def plan_episodes(tasks: list[Task], episodes: int) -> list[tuple[Task, int]]:
    """Episode i → (task i mod n, seed i div n): the first n episodes cover the split once."""
    if not tasks:
        raise ValueError("the split has no tasks")
    return [(tasks[i % len(tasks)], i // len(tasks)) for i in range(episodes)]


def resolve_teacher(spec: str, env_name: str, *, first_thought: bool = False, temperature: float = 0.0,
                    max_new_tokens: int = 128, prices: str | None = None, mistake_rate: float = 0.0) -> Policy:
    """`expert`, `openai:MODEL` (any OpenAI-compatible endpoint, e.g. vLLM, via OPENAI_BASE_URL), or a local
    Hugging Face model directory / hub name. ``mistake_rate``: the expert's deliberate, recovered mistakes."""
    if mistake_rate and spec != "expert":
        raise ValueError("--mistake-rate applies to the expert teacher")
    if spec == "expert":
        from agentkd.policies.expert import ExpertPolicy

        return ExpertPolicy(env_name, mistake_rate=mistake_rate)
    if spec.startswith("openai:"):
        try:
            from langchain_openai import ChatOpenAI
        except ImportError as exc:
            raise ValueError("--teacher openai:MODEL needs langchain-openai: pip install langchain-openai") from exc
        from agentkd.policies.chat import ChatModelPolicy

        model = ChatOpenAI(model=spec.split(":", 1)[1], temperature=temperature, max_tokens=max_new_tokens)
        return ChatModelPolicy(model, first_thought=first_thought, prices=prices)
    from agentkd.policies.hf import HFPolicy

    if first_thought:
        raise ValueError("--first-thought applies to chat-model teachers (openai:MODEL)")
    return HFPolicy(spec, max_new_tokens=max_new_tokens, temperature=temperature)


class _Writer:
    """Upserts finished trajectories in batches from a background task while episodes keep playing.

    Episodes are much faster than embedding their steps, so `add` waits once `backlog` trajectories
    are pending: a crash then loses at most that many finished episodes (the next run replays them).
    """

    def __init__(self, store: TrajectoryStore, flush_every: int, on_stored: Callable[[int], None],
                 backlog_batches: int = 4):
        self.store = store
        self.flush_every = flush_every
        self.backlog = flush_every * backlog_batches
        self.on_stored = on_stored
        self.pending: list[Trajectory] = []
        self.flushing: asyncio.Task | None = None

    async def add(self, trajectory: Trajectory) -> None:
        self.pending.append(trajectory)
        if len(self.pending) >= self.flush_every and (self.flushing is None or self.flushing.done()):
            self.flushing = asyncio.create_task(self._drain(full_batches_only=True))
        while len(self.pending) >= self.backlog and self.flushing is not None and not self.flushing.done():
            await asyncio.wait({self.flushing}, timeout=0.05)
        if self.flushing is not None and self.flushing.done():
            self.flushing.result()  # surface a store error (e.g. StoreUnavailable) to the run

    async def _drain(self, full_batches_only: bool) -> None:
        while len(self.pending) >= (self.flush_every if full_batches_only else 1):
            batch, self.pending = self.pending[: self.flush_every], self.pending[self.flush_every:]
            await asyncio.to_thread(self.store.upsert, batch)
            self.on_stored(len(batch))

    async def close(self) -> None:
        """Write everything still pending (also after a failed episode)."""
        if self.flushing is not None:
            await self.flushing
        await self._drain(full_batches_only=False)


async def collect_async(policy: Policy, env_name: str, plan: list[tuple[Task, int]], store: TrajectoryStore, *,
                        workers: int = 8, max_steps: int = 50, flush_every: int = 32,
                        on_episode: Callable[[Trajectory], None] | None = None,
                        on_stored: Callable[[int], None] | None = None) -> CollectSummary:
    """Play the planned episodes that the store does not have yet; returns what happened."""
    ids = {trajectory_id(task.task_id, policy.info, seed): (task, seed) for task, seed in plan}
    existing = store.has(list(ids))
    todo = [ids[i] for i in ids if i not in existing]
    summary = CollectSummary(requested=len(ids), already_stored=len(existing))
    batching = policy if isinstance(policy, BatchingPolicy) else BatchingPolicy(policy, max_batch=max(1, workers))
    writer = _Writer(store, flush_every, on_stored or (lambda n: None))
    slots = asyncio.Semaphore(max(1, workers))
    started = time.perf_counter()

    async def one(task: Task, seed: int) -> None:
        async with slots:  # held until the writer accepts the trajectory: that bounds the backlog
            env = make_env(env_name, max_steps=max_steps)
            try:
                agent = build_env_agent(env, batching, max_steps=max_steps)
                trajectory = await run_episode(agent, task, seed=seed, max_steps=max_steps)
            finally:
                if callable(close := getattr(env, "close", None)):  # code environments hold sandboxes
                    close()
            summary.played += 1
            summary.succeeded += trajectory.success
            summary.steps += trajectory.num_steps
            if on_episode is not None:
                on_episode(trajectory)
            await writer.add(trajectory)

    try:
        await asyncio.gather(*(one(task, seed) for task, seed in todo))
    finally:
        await writer.close()  # keep whatever finished, also when an episode failed
    summary.wall_time_s = time.perf_counter() - started
    summary.batch_sizes = batching.batches
    summary.stored_total = len(store.has(list(ids)))
    return summary


def collect(policy: Policy, env_name: str, split: str, episodes: int, store: TrajectoryStore,
            **kwargs) -> CollectSummary:
    """Synchronous entry point: `episodes` episodes of `split` with `policy` into `store`."""
    plan = plan_episodes(load_tasks(env_name, split), episodes)
    return asyncio.run(collect_async(policy, env_name, plan, store, **kwargs))
