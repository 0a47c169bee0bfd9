"""Record an ordinary LangGraph message agent (tools + a chat model) as trajectories.

An author's existing agent, e.g. ``create_react_agent(model, tools)`` or LangChain's ``create_agent``,
becomes a teacher without rewriting it: :class:`MessageAgentRecorder` streams the graph's updates
and turns them into the same :class:`~agentkd.schema.Trajectory` records the environment agents
write. One step per model turn:

- a turn with ``AIMessage.tool_calls`` is a step whose ``action`` is the calls as JSON
  (``{"name": ..., "args": {...}}``, a list when the model called several tools at once), whose
  ``thought`` is the message's text, and whose ``next_observation`` is what the ``ToolMessage``s
  answered (each also in ``info["tool_results"]``);
- the final turn (no tool calls) is a ``final_answer`` step that ends the episode, its text in
  ``info["answer"]``.

The tools' JSON schemas are kept in the trajectory's metadata, so
:func:`agentkd.distill.tool_calls.tool_call_conversations` can turn stored episodes into
tool-calling SFT data (``messages`` plus ``tools``) without the tools at hand. An episode's
success comes from ``judge(answer)`` when one is given (otherwise it is recorded as unjudged:
``success=False`` and ``metadata["judged"] = False``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from agentkd.schema import PolicyInfo, Step, Task, Trajectory, utc_now
from agentkd.store.protocol import TrajectoryStore

FINAL_ANSWER = "final_answer"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks: keep the text ones
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content)


def tool_schemas(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """OpenAI-style function schemas of LangChain tools (what chat templates and TRL take as ``tools``)."""
    from langchain_core.utils.function_calling import convert_to_openai_tool

    return [convert_to_openai_tool(tool) for tool in tools]


def calls_action(tool_calls: Sequence[dict[str, Any]]) -> str:
    """A turn's tool calls as the step's action: one call as an object, several as a list (sorted keys)."""
    calls = [{"name": call["name"], "args": call.get("args", {})} for call in tool_calls]
    return json.dumps(calls[0] if len(calls) == 1 else calls, sort_keys=True, ensure_ascii=False)


def _messages(update: dict[str, Any]) -> list[Any]:
    """The messages one streamed update adds (``{node: {"messages": [...]}}``; other updates add none)."""
    return [m for node in update.values() if isinstance(node, dict) for m in node.get("messages", [])]


def _model_turn(message: Any, index: int, observation: str, latency_s: float) -> Step:
    """One model turn as a step: its tool calls as the action, or the final answer that ends the episode."""
    usage = message.usage_metadata or {}
    text = _text(message.content)
    calls = list(message.tool_calls or [])
    action = calls_action(calls) if calls else FINAL_ANSWER
    return Step(index=index, observation=observation, thought=text, action=action,
                raw_output=text + ("\n" + action if calls else ""), done=not calls,
                prompt_tokens=int(usage.get("input_tokens", 0)), completion_tokens=int(usage.get("output_tokens", 0)),
                latency_s=latency_s, info={"tool_calls": calls} if calls else {"answer": text})


def _add_tool_answer(step: Step, message: Any) -> None:
    """A ``ToolMessage`` answering one of the step's calls: kept per call and appended to its observation."""
    content = _text(message.content)
    step.info.setdefault("tool_results", []).append(
        {"tool_call_id": message.tool_call_id, "name": message.name, "content": content})
    answer = f"{message.name}: {content}" if message.name else content
    step.next_observation = "\n".join(filter(None, [step.next_observation, answer]))


class MessageAgentRecorder:
    """Runs a LangGraph message agent on goals and records each run.

    Args:
        graph: a compiled graph whose state has ``messages`` (``create_react_agent``, ``create_agent``).
        tools: the agent's tools, for their schemas in the records (optional).
        name: the agent's name in ``policy`` (part of the trajectory id; default: the graph's name).
        env: the ``env`` recorded (default ``"agent"``), so the store can filter these episodes.
        store: where each trajectory goes (anything with ``upsert``), or None to only return them.
        judge: ``judge(answer) -> bool`` for the episode's success, or None.
        max_steps: the graph's recursion limit is set from it.
    """

    def __init__(self, graph: Any, *, tools: Sequence[Any] = (), name: str | None = None, env: str = "agent",
                 store: TrajectoryStore | None = None, judge: Callable[[str], bool] | None = None, max_steps: int = 25):
        self.graph, self.store, self.judge, self.env, self.max_steps = graph, store, judge, env, max_steps
        self.tools = tool_schemas(tools) if tools else []
        self.info = PolicyInfo(kind="langgraph_agent", name=name or getattr(graph, "name", None) or "agent",
                               params={"tools": sorted(t["function"]["name"] for t in self.tools)})

    def task(self, goal: str, *, task_id: str | None = None, split: str = "default",
             task_type: str = "default") -> Task:
        """The task record for a goal; its id defaults to a digest of the goal, so a re-run upserts."""
        task_id = task_id or f"{self.env}/{hashlib.sha256(goal.encode()).hexdigest()[:12]}"
        return Task(task_id=task_id, env=self.env, split=split, task_type=task_type, goal=goal, params={})

    def run(self, goal: str, **kwargs: Any) -> Trajectory:
        """Run the agent on one goal and record it (see :meth:`arun`)."""
        import asyncio

        return asyncio.run(self.arun(goal, **kwargs))

    async def arun(self, goal: str, *, seed: int = 0, config: dict[str, Any] | None = None,
                   **task_fields: Any) -> Trajectory:
        """Stream the graph on ``goal`` and return the recorded trajectory (also upserted into the store)."""
        from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
        from langgraph.errors import GraphRecursionError

        task = self.task(goal, **task_fields)
        trajectory = Trajectory.start(task, self.info, seed, tools=self.tools)
        run_config = {"recursion_limit": 2 * self.max_steps,  # a model node and a tool node per step
                      "run_name": f"{self.env}:{task.task_id}",
                      "tags": ["agentkd", "record", self.env], "metadata": {"task_id": task.task_id}}
        started = last = time.perf_counter()
        open_step: Step | None = None  # the last model turn that called tools, waiting for their answers
        stream = self.graph.astream({"messages": [HumanMessage(goal)]}, {**run_config, **(config or {})},
                                    stream_mode="updates")
        try:
            async for update in stream:
                for message in _messages(update):
                    if isinstance(message, AIMessage):
                        now = time.perf_counter()
                        observation = open_step.next_observation if open_step is not None else goal
                        step = _model_turn(message, len(trajectory.steps), observation, now - last)
                        last = now
                        trajectory.steps.append(step)
                        trajectory.prompt_tokens += step.prompt_tokens
                        trajectory.completion_tokens += step.completion_tokens
                        open_step = None if step.done else step
                    elif isinstance(message, ToolMessage) and open_step is not None:
                        _add_tool_answer(open_step, message)
        except GraphRecursionError:  # the agent kept calling tools: keep what it did, as an unfinished episode
            trajectory.metadata["stopped"] = f"step limit ({self.max_steps} model turns)"
        final = trajectory.steps[-1] if trajectory.steps and trajectory.steps[-1].done else None
        answer = final.info["answer"] if final is not None else ""
        trajectory.metadata["judged"] = self.judge is not None
        trajectory.success = bool(self.judge(answer)) if self.judge is not None and final is not None else False
        trajectory.reward = float(trajectory.success)
        if final is not None:
            final.reward = trajectory.reward
        trajectory.wall_time_s = time.perf_counter() - started
        trajectory.finished_at = utc_now()
        if self.store is not None:
            self.store.upsert(trajectory)
        return trajectory
