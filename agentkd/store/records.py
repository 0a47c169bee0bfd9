"""Records of the experience store: what a trajectory, a step or a principle becomes in Chroma, and filters.

A trajectory row has id ``trajectory_id`` and the flat metadata of :func:`trajectory_metadata`; a
step row has id :func:`step_id`, document :func:`step_context` and the metadata of
:func:`step_metadata`; a principle row has id ``principle_id`` and :func:`principle_metadata`. The
keyword filters of the store's methods become Chroma ``where`` clauses with :func:`where_clause`
and are checked client-side with :func:`matches_filters`.

Importing this module does not import chromadb.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentkd.schema import Principle, Step, Trajectory

__all__ = [
    "FILTER_KEYS",
    "IMPORT_CHUNK",
    "PRINCIPLE_FILTER_KEYS",
    "PrincipleHit",
    "StepHit",
    "TrajectoryHit",
    "matches_filters",
    "principle_metadata",
    "similarity_from_distance",
    "step_context",
    "step_id",
    "step_metadata",
    "steps_of",
    "trajectory_metadata",
    "where_clause",
]

#: Keyword filters accepted by count/iterate/query_*/stats/export_jsonl/to_dataset.
FILTER_KEYS = ("env", "split", "task_type", "success", "policy_kind", "policy_name", "evaluation")
#: Keyword filters accepted by the principle methods (``task_type=""`` selects env-wide principles).
PRINCIPLE_FILTER_KEYS = ("env", "kind", "task_type", "status", "key")
#: Trajectories per upsert when importing a file or a spool.
IMPORT_CHUNK = 256

_THOUGHT_CHARS = 1000  # thoughts are truncated to this in step metadata
_HISTORY_OBS_CHARS = 200  # each earlier observation in a step context
_CURRENT_OBS_CHARS = 600  # the current observation in a step context


# ---- hits ---------------------------------------------------------------------------------------


@dataclass
class StepHit:
    """One step returned by :meth:`ExperienceStore.query_steps` (smaller distance = more similar)."""

    trajectory_id: str
    index: int
    action: str
    thought: str
    document: str  # the step context that was embedded
    distance: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrajectoryHit:
    """One trajectory returned by :meth:`ExperienceStore.query_trajectories` (goal similarity)."""

    trajectory_id: str
    distance: float
    metadata: dict[str, Any]
    trajectory: Trajectory


@dataclass
class PrincipleHit:
    """One principle returned by :meth:`ExperienceStore.query_principles`.

    ``similarity`` is the cosine similarity of the query and the principle's text (1 = same
    direction); Chroma reports cosine *distance*, ``1 - similarity``, which is kept as ``distance``.
    """

    principle: Principle
    similarity: float
    distance: float


def similarity_from_distance(distance: float) -> float:
    """Cosine similarity from a Chroma cosine distance (``distance = 1 - similarity``): larger = more alike."""
    return 1.0 - float(distance)


# ---- step context -----------------------------------------------------------------------------


def _truncate(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def step_context(goal: str, history: list[Step], observation: str, max_history: int = 3) -> str:
    """The text that represents one decision point: what is embedded, stored and retrieved.

    ``history`` are the steps taken so far in the episode (oldest first) and ``observation`` what
    the agent sees now. The text is the goal, the last ``max_history`` actions each followed by
    the observation it produced (truncated), and the current observation::

        Goal: put a clean mug in coffeemachine.
        > go to countertop 1
        You arrive at countertop 1. On the countertop 1, you see a mug 1.
        > take mug 1 from countertop 1
        Observation: You pick up the mug 1 from the countertop 1.

    (the last action's result is the current observation, so it is not repeated). Whitespace is
    collapsed. The store builds step documents with this function and the in-context
    distillation retriever builds its queries with it, so both sides embed the same shape.
    """
    lines = [f"Goal: {_truncate(goal, _CURRENT_OBS_CHARS)}"]
    recent = history[-max_history:] if max_history > 0 else []
    current = " ".join(observation.split())
    for position, step in enumerate(recent):
        lines.append(f"> {_truncate(step.action, _HISTORY_OBS_CHARS)}")
        result = " ".join(step.next_observation.split())
        if result and not (position == len(recent) - 1 and result == current):
            lines.append(_truncate(result, _HISTORY_OBS_CHARS))
    lines.append(f"Observation: {_truncate(current, _CURRENT_OBS_CHARS)}")
    return "\n".join(lines)


# ---- filters ------------------------------------------------------------------------------------


def where_clause(filters: dict[str, Any], keys: Sequence[str] = FILTER_KEYS) -> dict[str, Any] | None:
    """The Chroma ``where`` clause of keyword filters (None without any); a list value matches any item."""
    unknown = sorted(set(filters) - set(keys))
    if unknown:
        raise TypeError(f"unknown filter(s) {', '.join(unknown)}; filters are {', '.join(keys)}")
    clauses: list[dict[str, Any]] = []
    for key in keys:
        value = filters.get(key)
        if value is None:
            continue
        if isinstance(value, (list, tuple, set, frozenset)):
            values = sorted(value, key=str)
            clauses.append({key: {"$in": values}} if len(values) != 1 else {key: values[0]})
        else:
            clauses.append({key: value})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def matches_filters(metadata: dict[str, Any], filters: dict[str, Any]) -> bool:
    """Whether a record's metadata passes the filters (the client-side twin of :func:`where_clause`)."""
    for key, value in filters.items():
        if value is None:
            continue
        found = metadata.get(key)
        if isinstance(value, (list, tuple, set, frozenset)):
            if found not in value:
                return False
        elif found != value:
            return False
    return True


# ---- rows ---------------------------------------------------------------------------------------


def trajectory_metadata(traj: Trajectory) -> dict[str, Any]:
    return {
        "env": traj.env,
        "split": traj.split,
        "task_type": traj.task_type,
        "task_id": traj.task_id,
        "success": bool(traj.success),
        "reward": float(traj.reward),
        "num_steps": traj.num_steps,
        "policy_kind": traj.policy.kind,
        "policy_name": traj.policy.name,
        "seed": int(traj.seed),
        "prompt_tokens": int(traj.prompt_tokens),
        "completion_tokens": int(traj.completion_tokens),
        "cost_usd": float(traj.cost_usd),
        "evaluation": bool(traj.metadata.get("evaluation", False)),
        "started_at": traj.started_at.isoformat(),
        "schema_version": int(traj.schema_version),
    }


def step_metadata(traj: Trajectory, step: Step) -> dict[str, Any]:
    return {
        "trajectory_id": traj.trajectory_id,
        "index": step.index,
        "action": step.action,
        "thought": step.thought[:_THOUGHT_CHARS],
        "env": traj.env,
        "split": traj.split,
        "task_type": traj.task_type,
        "success": bool(traj.success),
        "evaluation": bool(traj.metadata.get("evaluation", False)),
        "policy_kind": traj.policy.kind,
        "policy_name": traj.policy.name,
        "valid": bool(step.valid),
        "deferred": bool(step.deferred),
        "reward": float(step.reward),
        "done": bool(step.done),
    }


def step_id(trajectory_id: str, index: int) -> str:
    return f"{trajectory_id}:{index:03d}"


def steps_of(traj: Trajectory) -> Iterator[tuple[Step, str]]:
    for position, step in enumerate(traj.steps):
        yield step, step_context(traj.goal, traj.steps[:position], step.observation)


def principle_metadata(principle: Principle) -> dict[str, Any]:
    return {
        "kind": principle.kind,
        "env": principle.env,
        "task_type": principle.task_type or "",  # "" = every task type of the env
        "score": float(principle.score),
        "usage_count": int(principle.usage_count),
        "success_count": int(principle.success_count),
        "version": int(principle.version),
        "status": principle.status,
        "key": principle.key or "",
    }


def count_metadata(metadatas: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Counts of trajectory records by env, split, task type, policy and success (``ExperienceStore.stats``)."""
    counters: dict[str, Counter[str]] = {key: Counter() for key in ("env", "split", "task_type", "policy")}
    success: Counter[str] = Counter({"true": 0, "false": 0})
    total = steps = 0
    for metadata in metadatas:
        total += 1
        steps += int(metadata.get("num_steps", 0))
        for key in ("env", "split", "task_type"):
            counters[key][str(metadata.get(key, ""))] += 1
        counters["policy"][f"{metadata.get('policy_kind', '')}:{metadata.get('policy_name', '')}"] += 1
        success["true" if metadata.get("success") else "false"] += 1
    return {
        "trajectories": total,
        "steps": steps,
        "success_rate": success["true"] / total if total else 0.0,
        **{key: dict(sorted(counter.items())) for key, counter in counters.items()},
        "success": dict(success),
    }
