"""Episode journals: an episode stopped mid-way resumes from its last step, not from its start.

A student's 50-step episode on a CPU takes an hour or more; a run stopped at the end of a session
used to lose every episode still playing. With a journal, each step is appended to a JSON-lines
file named after the trajectory id as soon as it is played. Playing the same episode again (same
task, policy and seed, hence the same trajectory id) replays the journaled actions in a fresh
environment without asking the policy, checks that each gives the journaled observation, and goes
on from there. The journal is deleted once the finished trajectory is in the store. A policy whose
action depends only on what it is shown (a student: its samples are seeded by task, seed and step)
ends the episode exactly as an unbroken run would; one that keeps its own state across steps (the
household expert's plan) goes on from the replayed state with a fresh one.

Named behaviours: a torn last line (the process was killed while writing it) is dropped; a journal
that does not replay (the environment gives another observation: its code or data changed) is
discarded with a warning and the episode starts over; an unreadable journal likewise.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkd.env import Env
from agentkd.schema import Step, Task, Trajectory

__all__ = ["EpisodeJournal", "Resumed"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resumed:
    """Where a replayed journal left the episode."""

    observation: str
    admissible: list[str] | None
    reward: float
    done: bool
    elapsed_s: float  # wall time the journaled steps took when they were played


class EpisodeJournal:
    """A folder of per-episode journals (``<trajectory id>.jsonl``)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)  # once, not per recorded step

    def path(self, trajectory_id: str) -> Path:
        return self.folder / f"{trajectory_id}.jsonl"

    def record(self, trajectory: Trajectory, elapsed_s: float) -> None:
        """Append the trajectory's last step (with the cost and wall time so far)."""
        line = json.dumps({"step": trajectory.steps[-1].model_dump(mode="json"), "cost_usd": trajectory.cost_usd,
                           "elapsed_s": elapsed_s})
        with open(self.path(trajectory.trajectory_id), "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()  # in the OS once written: a killed process loses at most the line being written

    def entries(self, trajectory_id: str) -> list[dict[str, Any]]:
        """The journaled steps, in order; a torn last line is dropped. Raises ValueError if a line is corrupt."""
        path = self.path(trajectory_id)
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").split("\n")
        entries = []
        for i, line in enumerate(lines):
            if not line:
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                if i == len(lines) - 1:  # the last line, unterminated: cut off by a kill
                    break
                raise ValueError(f"{path}: line {i + 1} is not JSON") from None
        return entries

    def resume(self, env: Env, task: Task, trajectory: Trajectory, observation: str) -> Resumed | None:
        """Replay ``trajectory``'s journal in ``env`` (just reset to ``task``, showing ``observation``), appending
        its steps to ``trajectory``; None when there is none. A journal that does not replay is discarded and the
        episode starts over (``env`` reset again, no steps)."""
        try:
            entries = self.entries(trajectory.trajectory_id)
        except (OSError, ValueError) as exc:
            return self._start_over(env, task, trajectory, f"unreadable ({exc})")
        if not entries:
            return None
        reward, done = 0.0, False
        for entry in entries:
            try:
                step = Step.model_validate(entry["step"])
            except (KeyError, TypeError, ValueError) as exc:
                return self._start_over(env, task, trajectory, f"a step does not parse ({exc})")
            if step.index != len(trajectory.steps) or step.observation != observation:
                return self._start_over(env, task, trajectory, f"step {step.index} does not follow the one before")
            observation, reward, done, _ = env.step(step.action)
            if observation != step.next_observation:
                return self._start_over(env, task, trajectory, f"step {step.index} gives another observation")
            trajectory.steps.append(step)
        trajectory.cost_usd = float(entries[-1].get("cost_usd", 0.0))
        return Resumed(observation, env.admissible_actions(), reward, done, float(entries[-1].get("elapsed_s", 0.0)))

    def _start_over(self, env: Env, task: Task, trajectory: Trajectory, why: str) -> Resumed:
        log.warning("journal of %s discarded, the episode starts over: %s", trajectory.trajectory_id, why)
        self.discard(trajectory.trajectory_id)
        trajectory.steps.clear()
        trajectory.cost_usd = 0.0
        observation = env.reset(task)
        return Resumed(observation, env.admissible_actions(), 0.0, False, 0.0)

    def discard(self, trajectory_id: str) -> None:
        self.path(trajectory_id).unlink(missing_ok=True)

    def discard_stored(self, stored: set[str]) -> None:
        """Drop the journals of trajectories already in the store (a run killed between storing and deleting)."""
        for path in self.folder.glob("*.jsonl"):
            if path.stem in stored:
                path.unlink()
