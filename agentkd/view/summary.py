"""What the viewer shows of a trajectory: its row in the table, each step's facts, and where two runs part.

The browser pages, the static ``episodes.html`` and ``agentkd store show`` all read trajectories
through these functions, so they agree on what a step's agreement, deferral or first divergence is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentkd.schema import Candidate, Step, Trajectory

__all__ = [
    "Row",
    "StepFacts",
    "evaluation_run",
    "first_divergence",
    "partner_map",
    "principle_texts",
    "partners",
    "preferred_partner",
    "step_facts",
]

TEACHER_RUN = "teacher"  # the evaluation configuration in which the teacher itself plays
_TEACHER_KINDS = ("expert", "chat_model")  # policy kinds that act as teachers


def evaluation_run(traj: Trajectory) -> str:
    """The evaluation configuration that played it (``metadata.evaluation``), or "" for a collected one."""
    run = traj.metadata.get("evaluation")
    if isinstance(run, str):
        return run
    return "evaluation" if run else ""


def _is_demo(traj: Trajectory) -> bool:
    # A cascade's deferred step stored as a one-step teacher trajectory (agentkd.eval.run._demonstrations).
    return traj.metadata.get("source") == "cascade"


@dataclass(frozen=True)
class Row:
    """One trajectory in the table: the fields the filters and columns read."""

    trajectory_id: str
    env: str
    split: str
    task_type: str
    task_id: str
    goal: str
    policy: str  # "kind:name"
    run: str  # evaluation configuration, "" when collected
    success: bool
    steps: int
    deferred: int
    invalid: int
    candidates: int
    started_at: str
    demo: bool = False  # a deferred step kept as a one-step teacher demonstration

    @classmethod
    def of(cls, traj: Trajectory) -> Row:
        return cls(
            trajectory_id=traj.trajectory_id,
            env=traj.env,
            split=traj.split,
            task_type=traj.task_type,
            task_id=traj.task_id,
            goal=traj.goal,
            policy=f"{traj.policy.kind}:{traj.policy.name}",
            run=evaluation_run(traj),
            success=bool(traj.success),
            steps=traj.num_steps,
            deferred=sum(step.deferred for step in traj.steps),
            invalid=sum(not step.valid for step in traj.steps),
            candidates=sum(len(step.candidates) for step in traj.steps),
            started_at=traj.started_at.strftime("%Y-%m-%d %H:%M"),
            demo=_is_demo(traj),
        )

    @property
    def is_teacher(self) -> bool:
        return self.run == TEACHER_RUN or (not self.run and self.policy.split(":", 1)[0] in _TEACHER_KINDS)


@dataclass
class StepFacts:
    """What a transcript shows beside a step's thought, action and observation."""

    agreement: float | None  # share of the samples that voted for the chosen action
    deferred_for: str  # why the step went to the teacher ("agreement", "revisit"), "" when it did not
    candidates: list[Candidate] = field(default_factory=list)  # most votes first, then the likelier
    chosen: int | None = None  # position in ``candidates`` of the executed action
    principles: list[str] = field(default_factory=list)  # ids of the principles shown in the prompt
    demos: int = 0  # teacher demonstrations shown in the prompt
    extra: dict[str, Any] = field(default_factory=dict)  # the rest of ``Step.info``, as recorded


_KNOWN_INFO = ("agreement", "deferred_for", "principles_shown", "demos")


def step_facts(step: Step) -> StepFacts:
    """The step's voting, deferral and prompt facts, read from its candidates and ``info``."""
    info = step.info
    candidates = sorted(step.candidates, key=lambda c: (-c.votes, -(c.logprob if c.logprob is not None else -1e9)))
    agreement = info.get("agreement")
    if agreement is None and candidates:
        total = sum(c.votes for c in candidates)
        agreement = candidates[0].votes / total if total else None
    chosen = next((i for i, c in enumerate(candidates) if c.valid and c.action == step.action), None)
    deferred_for = str(info.get("deferred_for", "")) or ("teacher" if step.deferred else "")
    principles = info.get("principles_shown") or []
    return StepFacts(
        agreement=float(agreement) if agreement is not None else None,
        deferred_for=deferred_for,
        candidates=candidates,
        chosen=chosen,
        principles=[str(p) for p in principles] if isinstance(principles, list) else [str(principles)],
        demos=int(info.get("demos", 0) or 0),
        extra={k: v for k, v in info.items() if k not in _KNOWN_INFO},
    )


def _action_key(action: str) -> str:
    return " ".join(action.split()).casefold()


def first_divergence(a: Sequence[Step], b: Sequence[Step]) -> int | None:
    """Index of the first step at which two runs act differently (or one has stopped); None if identical."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if _action_key(x.action) != _action_key(y.action):
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def partners(row: Row, rows: Iterable[Row]) -> list[Row]:
    """The other full trajectories of the same task (teachers first), to compare ``row`` with."""
    same = [r for r in rows if r.task_id == row.task_id and r.env == row.env
            and r.trajectory_id != row.trajectory_id and not r.demo]
    return sorted(same, key=lambda r: (not r.is_teacher, r.run, r.policy, r.trajectory_id))


def preferred_partner(row: Row, rows: Iterable[Row]) -> Row | None:
    """The teacher's trajectory of the same task, for a trajectory that is not the teacher's; else None."""
    if row.is_teacher or row.demo:
        return None
    found = partners(row, rows)
    return found[0] if found and found[0].is_teacher else None


def partner_map(rows: Sequence[Row]) -> dict[str, Row]:
    """Each trajectory id → its :func:`preferred_partner` (only those that have one)."""
    by_task: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        by_task.setdefault((row.env, row.task_id), []).append(row)
    found = {}
    for row in rows:
        partner = preferred_partner(row, by_task[(row.env, row.task_id)])
        if partner is not None:
            found[row.trajectory_id] = partner
    return found


def principle_texts(store: Any, trajectories: Iterable[Trajectory]) -> dict[str, str]:
    """Text of the principles shown in these trajectories' prompts, by id (those ``store`` still holds)."""
    ids = {str(p) for t in trajectories for s in t.steps for p in (s.info.get("principles_shown") or [])}
    if not ids or not hasattr(store, "get_principles"):
        return {}
    return {pid: p.text for pid, p in store.get_principles(sorted(ids)).items()}
