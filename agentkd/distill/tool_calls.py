"""Tool-calling SFT data from recorded message agents (:mod:`agentkd.agents.message_recorder`).

Each successful episode becomes one conversation in the format chat templates with tool support and
TRL's ``SFTTrainer`` take: ``{"messages": [...], "tools": [...]}``, where the assistant turns carry
``tool_calls`` (``{"type": "function", "function": {"name", "arguments"}}``) and each tool answer is
a ``{"role": "tool"}`` message. The tools' schemas come from the trajectory's metadata, recorded
with the episode.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentkd.schema import Trajectory

__all__ = ["tool_call_conversation", "tool_call_conversations"]


def tool_call_conversation(traj: Trajectory, system: str | None = None) -> dict[str, Any]:
    """One recorded message-agent episode as a tool-calling conversation."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": traj.goal})
    for step in traj.steps:
        calls = step.info.get("tool_calls")
        if not calls:  # the final answer
            messages.append({"role": "assistant", "content": step.info.get("answer", step.thought)})
            continue
        ids = [call.get("id") or f"call_{step.index}_{i}" for i, call in enumerate(calls)]
        messages.append({"role": "assistant", "content": step.thought, "tool_calls": [
            {"type": "function", "id": call_id, "function": {"name": call["name"], "arguments": call.get("args", {})}}
            for call_id, call in zip(ids, calls, strict=True)]})
        results = {r.get("tool_call_id"): r for r in step.info.get("tool_results", [])}
        for call_id, call in zip(ids, calls, strict=True):
            result = results.get(call_id, {})
            messages.append({"role": "tool", "name": call["name"], "tool_call_id": call_id,
                             "content": result.get("content", "")})
    return {"messages": messages, "tools": list(traj.metadata.get("tools", []))}


def tool_call_conversations(trajectories: Iterable[Trajectory], *, success_only: bool = True,
                            system: str | None = None) -> list[dict[str, Any]]:
    """Conversations of the recorded message-agent episodes (successful ones only, by default)."""
    return [tool_call_conversation(t, system) for t in trajectories
            if t.policy.kind == "langgraph_agent" and (t.success or not success_only)]
