"""Evaluation metrics: what a set of evaluated episodes adds up to, and the ``results.json`` file.

:func:`summarize` turns :class:`~agentkd.schema.Trajectory` records into :class:`Metrics` — one
:class:`GroupMetrics` for all episodes and one per task type. A :class:`ConfigResult` is the
metrics of one *configuration* (a named way of running an agent: ``"greedy"``, ``"sc@8"``,
``"sc@8+cascade0.5"``, ``"teacher"``) on one split; :class:`EvalResults` collects them and is
saved as ``results.json``::

    {
      "schema_version": 1,
      "created_at": "2025-01-01T00:00:00Z",
      "metadata": {...},                       # free-form: run arguments, host, ...
      "configs": [
        {
          "name": "sc@8", "split": "valid_unseen", "env": "household",
          "description": "self-consistency, 8 samples", "params": {"n": 8},
          "metrics": {
            "overall": {<GroupMetrics>},
            "by_task_type": {"pick_and_place_simple": {<GroupMetrics>}, ...}
          },
          "episodes": [                        # optional per-episode rows ([] when not kept)
            {"task_id": ..., "task_type": ..., "success": true, "steps": 7, "cost_usd": 0.0, "tokens": 812}
          ]
        }
      ]
    }

``<GroupMetrics>`` keys: ``episodes, successes, success_rate, mean_steps, mean_steps_success,
steps, invalid_steps, invalid_action_rate, deferred_steps, deferral_rate, mean_tokens,
mean_cost_usd, total_cost_usd, mean_wall_time_s``. A rate or mean whose denominator is zero
(no episodes, no steps, no successes) is ``null`` rather than 0 or NaN, so "never happened" is not
mistaken for "always failed". Files written by a newer agentkd (higher ``schema_version``) are
refused with :class:`~agentkd.schema.SchemaVersionError`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, Field, ValidationError, field_validator

from agentkd.errors import AgentKDError
from agentkd.policies.prompt import written_action
from agentkd.schema import JSONParams, SchemaVersionError, Trajectory, UTCDateTime, utc_now

__all__ = [
    "RESULTS_FILENAME",
    "RESULTS_SCHEMA_VERSION",
    "ConfigResult",
    "EpisodeRow",
    "EvalResults",
    "GroupMetrics",
    "Metrics",
    "ResultsFileError",
    "summarize",
]

#: Version of the ``results.json`` format; independent of the trajectory schema version.
RESULTS_SCHEMA_VERSION = 1
RESULTS_FILENAME = "results.json"


class ResultsFileError(AgentKDError, ValueError):
    """A ``results.json`` file is missing, not JSON, or does not match the expected shape."""


def _ratio(num: float, den: float) -> float | None:
    # None, not 0 or NaN: an empty group has no rate, and NaN is not valid JSON.
    return num / den if den else None


class GroupMetrics(BaseModel):
    """Numbers for one group of episodes (all of them, or one task type)."""

    episodes: int = 0
    successes: int = 0
    success_rate: float | None = None  # successes / episodes
    mean_steps: float | None = None  # over all episodes
    mean_steps_success: float | None = None  # over successful episodes only
    steps: int = 0  # total steps taken
    invalid_steps: int = 0
    invalid_action_rate: float | None = None  # invalid steps / steps
    deferred_steps: int = 0
    deferral_rate: float | None = None  # deferred (to the teacher) steps / steps
    mean_tokens: float | None = None  # prompt + completion tokens per episode
    mean_cost_usd: float | None = None  # per episode
    total_cost_usd: float = 0.0
    mean_wall_time_s: float | None = None  # per episode

    @classmethod
    def of(cls, trajectories: Sequence[Trajectory]) -> Self:
        """Compute the metrics of ``trajectories`` (any number, including none)."""
        n = len(trajectories)
        wins = [t for t in trajectories if t.success]
        steps = sum(t.num_steps for t in trajectories)
        invalid = sum(not s.valid for t in trajectories for s in t.steps)
        deferred = sum(s.deferred for t in trajectories for s in t.steps)
        total_cost = sum(t.cost_usd for t in trajectories)
        return cls(
            episodes=n,
            successes=len(wins),
            success_rate=_ratio(len(wins), n),
            mean_steps=_ratio(steps, n),
            mean_steps_success=_ratio(sum(t.num_steps for t in wins), len(wins)),
            steps=steps,
            invalid_steps=invalid,
            invalid_action_rate=_ratio(invalid, steps),
            deferred_steps=deferred,
            deferral_rate=_ratio(deferred, steps),
            mean_tokens=_ratio(sum(t.total_tokens for t in trajectories), n),
            mean_cost_usd=_ratio(total_cost, n),
            total_cost_usd=total_cost,
            mean_wall_time_s=_ratio(sum(t.wall_time_s for t in trajectories), n),
        )


class Metrics(BaseModel):
    """Metrics over all episodes and per task type (in a stable, meaningful order)."""

    overall: GroupMetrics
    by_task_type: dict[str, GroupMetrics] = Field(default_factory=dict)


def summarize(trajectories: Iterable[Trajectory], task_types: Sequence[str] = ()) -> Metrics:
    """Summarize evaluated episodes, overall and per task type.

    ``task_types`` lists types to report even when no episode has them (with zero episodes), and
    fixes their order — pass ``environments.household.TASK_TYPES`` for household runs. Types seen
    in the episodes but not listed follow, sorted.
    """
    trajectories = list(trajectories)
    order = list(dict.fromkeys(task_types))
    order += sorted({t.task_type for t in trajectories} - set(order))
    groups: dict[str, list[Trajectory]] = {name: [] for name in order}
    for traj in trajectories:
        groups[traj.task_type].append(traj)
    return Metrics(
        overall=GroupMetrics.of(trajectories),
        by_task_type={name: GroupMetrics.of(group) for name, group in groups.items()},
    )


class EpisodeRow(BaseModel):
    """One evaluated episode, reduced to what plots and significance tests need."""

    task_id: str
    task_type: str
    success: bool
    steps: int
    cost_usd: float = 0.0
    tokens: int = 0
    goal: str = ""
    invalid: int = 0  # steps whose action was refused or did not parse
    repeated: str = ""  # the action written most often, with its count, when it came back 3 times or more
    trajectory_id: str = ""  # its trajectory in the store and in episodes.html

    @classmethod
    def of(cls, traj: Trajectory) -> Self:
        # what the student wrote: a refused command is stored with an empty action, its text in raw_output
        counts = Counter(written_action(step) or "(no action)" for step in traj.steps)
        action, times = counts.most_common(1)[0] if counts else ("", 0)
        return cls(
            task_id=traj.task_id,
            task_type=traj.task_type,
            success=traj.success,
            steps=traj.num_steps,
            cost_usd=traj.cost_usd,
            tokens=traj.total_tokens,
            goal=traj.goal,
            invalid=sum(not step.valid for step in traj.steps),
            repeated=f"{action} (×{times})" if times >= 3 else "",
            trajectory_id=traj.trajectory_id,
        )


class ConfigResult(BaseModel):
    """One configuration evaluated on one split."""

    name: str  # e.g. "greedy", "sc@8", "sc@8+cascade0.5", "teacher"
    split: str
    env: str = "household"
    description: str = ""
    params: JSONParams = Field(default_factory=dict)  # how it was run: samples, threshold, model, ...
    metrics: Metrics
    episodes: list[EpisodeRow] = Field(default_factory=list)

    @property
    def group(self) -> str:
        """The split as reports show it: ``valid_unseen`` for household tasks, ``qa/valid_unseen`` otherwise."""
        return self.split if self.env == "household" else f"{self.env}/{self.split}"

    @classmethod
    def from_trajectories(
        cls,
        name: str,
        trajectories: Iterable[Trajectory],
        *,
        split: str | None = None,
        description: str = "",
        params: dict[str, Any] | None = None,
        task_types: Sequence[str] = (),
        keep_episodes: bool = True,
    ) -> Self:
        """Summarize the episodes of configuration ``name`` on one split.

        ``split`` defaults to the episodes' own split; episodes from several splits are refused
        (make one result per split). ``keep_episodes=False`` leaves out the per-episode rows.
        """
        trajectories = list(trajectories)
        found = sorted({t.split for t in trajectories})
        if split is None:
            if len(found) != 1:
                raise ValueError(
                    f"configuration {name!r}: cannot infer the split from episodes of splits {found}; "
                    "pass split= explicitly"
                )
            split = found[0]
        elif found and found != [split]:
            raise ValueError(
                f"configuration {name!r}: split={split!r} but the episodes come from splits {found}; "
                "make one ConfigResult per split"
            )
        return cls(
            name=name,
            split=split,
            description=description,
            params=dict(params or {}),
            metrics=summarize(trajectories, task_types),
            episodes=[EpisodeRow.of(t) for t in trajectories] if keep_episodes else [],
        )


def _results_path(path: str | Path) -> Path:
    # A ".json" path is the file itself; anything else is the directory that holds results.json.
    path = Path(path)
    return path if path.suffix == ".json" else path / RESULTS_FILENAME


class EvalResults(BaseModel):
    """All configurations of an evaluation, as saved in ``results.json``."""

    schema_version: int = RESULTS_SCHEMA_VERSION
    created_at: UTCDateTime = Field(default_factory=utc_now)
    metadata: dict[str, Any] = Field(default_factory=dict)
    configs: list[ConfigResult] = Field(default_factory=list)

    @field_validator("schema_version")
    @classmethod
    def _not_from_the_future(cls, value: int) -> int:
        if value > RESULTS_SCHEMA_VERSION:
            raise ValueError(str(SchemaVersionError(value, RESULTS_SCHEMA_VERSION)))
        return value

    @property
    def splits(self) -> list[str]:
        """Splits (``env/split`` outside the household environment) in order of first appearance."""
        return list(dict.fromkeys(c.group for c in self.configs))

    @property
    def names(self) -> list[str]:
        """Configuration names in order of first appearance."""
        return list(dict.fromkeys(c.name for c in self.configs))

    def for_split(self, split: str) -> list[ConfigResult]:
        return [c for c in self.configs if c.group == split]

    def get(self, name: str, split: str) -> ConfigResult:
        for config in self.configs:
            if config.name == name and config.group == split:
                return config
        have = [(c.name, c.group) for c in self.configs]
        raise KeyError(f"no configuration {name!r} on split {split!r}; have {have}")

    def save(self, path: str | Path) -> Path:
        """Write ``results.json``; ``path`` is the file (``*.json``) or its directory. Returns the file."""
        file = _results_path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return file

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read ``results.json``; ``path`` is the file (``*.json``) or its directory."""
        file = _results_path(path)
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ResultsFileError(f"{file}: no such results file; run an evaluation first") from exc
        except json.JSONDecodeError as exc:
            raise ResultsFileError(f"{file}: not valid JSON ({exc})") from exc
        # Checked before validation so the reader gets the version message, not a pydantic dump.
        found = data.get("schema_version", 1) if isinstance(data, dict) else 1
        if isinstance(found, int) and found > RESULTS_SCHEMA_VERSION:
            error = SchemaVersionError(found, RESULTS_SCHEMA_VERSION)
            error.args = (f"{file}: {error}",)
            raise error
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ResultsFileError(f"{file}: not an agentkd results file: {exc}") from exc
