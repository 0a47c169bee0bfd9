"""The measured effect of principles: the household explorer without and with them, side by side.

1. The explorer (the expert's competence, no placement priors; :mod:`environments.household.explorer`)
   plays ``train_episodes`` train tasks; its trajectories go into a real store. Principles are mined
   from these episodes only — no privileged knowledge enters them.
2. The mined principles are added to the store (``agentkd distill principles``).
3. The same explorer plays the held-out split twice: alone, and wrapped in a
   :class:`~agentkd.distill.principles.PrinciplesPolicy` that retrieves principles from the store at
   every step (similarity × score, token budget) and shows them to it. The expert — who searches by
   the generator's own placement priors — plays it too, as the privileged reference.
4. The shown principles are credited with the outcomes of the episodes that showed them.

Reported per row: success rate, mean steps of the successful episodes, and — the comparison —
mean steps on the tasks that both explorer runs solved.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkd.distill.principles.lifecycle import SHOWN_KEY, CreditReport, credit
from agentkd.schema import Trajectory, principle_id

__all__ = ["AblationResult", "AblationRow", "principles_ablation"]


@dataclass
class AblationRow:
    name: str
    episodes: int
    successes: int
    mean_steps_success: float  # over its successful episodes
    mean_steps_all: float  # failures count with the steps they took (the step limit)
    trajectories: list[Trajectory] = field(default_factory=list, repr=False)

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0


@dataclass
class AblationResult:
    split: str
    train_episodes: int
    train_success_rate: float
    principles: int  # active household principles in the store
    rows: list[AblationRow]  # expert (reference), explorer, explorer + principles
    paired_tasks: int  # tasks both explorer runs solved
    paired_steps_without: float
    paired_steps_with: float
    goal_principle_shown: float  # share of episodes whose first prompt showed the goal object's search order
    credited: CreditReport
    store: str

    @property
    def steps_ratio(self) -> float:
        """Mean steps with principles / without, on the tasks both solved (below 1: fewer steps)."""
        return self.paired_steps_with / self.paired_steps_without if self.paired_steps_without else float("nan")

    @property
    def reduction(self) -> float:
        return 1.0 - self.steps_ratio


def _row(name: str, trajectories: list[Trajectory]) -> AblationRow:
    won = [t.num_steps for t in trajectories if t.success]
    return AblationRow(name, len(trajectories), len(won), statistics.fmean(won) if won else float("nan"),
                       statistics.fmean(t.num_steps for t in trajectories) if trajectories else float("nan"),
                       trajectories)


def _play(policy: Any, tasks: list, max_steps: int, workers: int, label: str) -> list[Trajectory]:
    from agentkd.collection import collect_async, plan_episodes
    from agentkd.eval.run import MemoryStore

    played: list[Trajectory] = []

    def mark(traj: Trajectory) -> None:
        traj.metadata["evaluation"] = label
        played.append(traj)

    asyncio.run(collect_async(policy, "household", plan_episodes(tasks, len(tasks)), MemoryStore(),
                              workers=workers, max_steps=max_steps, on_episode=mark))
    order = {t.task_id: i for i, t in enumerate(tasks)}
    return sorted(played, key=lambda t: order[t.task_id])


def principles_ablation(
    *,
    train_episodes: int = 400,
    split: str = "valid_unseen",
    max_tasks: int | None = None,
    store: str | Path | None = None,
    k: int = 3,
    max_tokens: int = 200,
    max_steps: int = 50,
    workers: int = 16,
    on_stage: Callable[[str], None] | None = None,
) -> AblationResult:
    """Run the ablation (see the module docstring); ``store`` defaults to a temporary folder."""
    from agentkd.collection import collect_async, plan_episodes
    from agentkd.distill.principles.pipeline import distill_principles
    from agentkd.distill.principles.retrieve import PrincipleRetriever, PrinciplesPolicy
    from agentkd.envs import load_tasks
    from agentkd.policies.expert import ExpertPolicy
    from agentkd.policies.explorer import ExplorerPolicy
    from agentkd.store import ExperienceStore

    stage = on_stage or (lambda text: None)
    scratch = tempfile.TemporaryDirectory(prefix="agentkd-principles-") if store is None else None
    location = Path(scratch.name) / "store" if scratch is not None else store
    spool = Path(scratch.name) / "spool" if scratch is not None else "trajectories/spool"
    experience = ExperienceStore(location, spool_dir=spool)
    try:
        explorer = ExplorerPolicy()
        stage(f"explorer plays {train_episodes} train episodes (stored)")
        summary = asyncio.run(collect_async(explorer, "household",
                                            plan_episodes(load_tasks("household", "train"), train_episodes),
                                            experience, workers=workers, max_steps=max_steps))
        train = {"env": "household", "split": "train", "policy_kind": "explorer", "evaluation": False}
        train_rate = experience.count(success=True, **train) / max(1, experience.count(**train))
        distill_principles(experience, env="household", split="train", policy_kind="explorer", on_stage=stage)

        tasks = load_tasks("household", split)[: max_tasks or None]
        stage(f"expert, explorer, explorer + principles on {len(tasks)} {split} tasks")
        expert = _play(ExpertPolicy("household"), tasks, max_steps, workers, "expert")
        alone = _play(explorer, tasks, max_steps, workers, "explorer")
        retriever = PrincipleRetriever(experience, "household", k=k, max_tokens=max_tokens)
        shown = _play(PrinciplesPolicy(ExplorerPolicy(), retriever), tasks, max_steps, workers, "explorer+principles")
        credited = credit(experience, shown)

        solved_both = [(a, b) for a, b in zip(alone, shown, strict=True) if a.success and b.success]
        by_id = {t.task_id: t for t in tasks}
        goal_shown = sum(
            bool(t.steps) and principle_id(f"household/search-order/{by_id[t.task_id].params.get('obj')}")
            in t.steps[0].info.get(SHOWN_KEY, [])
            for t in shown
        )
        return AblationResult(
            split=split, train_episodes=summary.requested, train_success_rate=train_rate,
            principles=experience.count_principles(env="household", status="active"),
            rows=[_row("expert (privileged priors)", expert), _row("explorer", alone),
                  _row("explorer + principles", shown)],
            paired_tasks=len(solved_both),
            paired_steps_without=statistics.fmean(a.num_steps for a, _ in solved_both) if solved_both else 0.0,
            paired_steps_with=statistics.fmean(b.num_steps for _, b in solved_both) if solved_both else 0.0,
            goal_principle_shown=goal_shown / len(shown) if shown else 0.0,
            credited=credited, store="(temporary)" if scratch is not None else str(location),
        )
    finally:
        experience.close()
        if scratch is not None:
            scratch.cleanup()
