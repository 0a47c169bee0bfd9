"""What a training run returns and writes as ``training_summary.json``: a typed record of its data,
steps, losses, time and throughput."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from agentkd.train.model_card import SUMMARY_FILE

__all__ = ["DataCounts", "TrainingSummary"]


class DataCounts(BaseModel):
    """What the stage's dataset builder did with the store's trajectories.

    A stage adds its own counts (REDI: ``pairs``, ``negatives``; GRPO: ``rollouts``; ICD: ``episodes``,
    ``with_demos``), kept as extra fields.
    """

    model_config = ConfigDict(extra="allow")

    considered: int = 0  # trajectories looked at
    kept: int = 0  # examples (pairs, prompts) trained on
    truncated: int = 0  # examples shortened to fit max_length
    dropped: dict[str, int] = {}  # reason -> count
    tokens: int = 0  # tokens in the kept examples

    def extra(self, name: str, default: Any = None) -> Any:
        """A stage's own count (``pairs``, ``rollouts``, ...), or ``default``."""
        return (self.model_extra or {}).get(name, default)


class TrainingSummary(BaseModel):
    """One training run: what :func:`~agentkd.train.sft.train_sft` (and REDI's, GRPO's) return.

    ``tokens`` counts the tokens trained on (padding excluded, all processes together), so
    ``tokens_per_second`` is the useful throughput whatever the batching.
    """

    stage: str
    student: str  # the output directory
    base: str  # the model the student started from (its card's base)
    data: DataCounts
    steps: int  # optimizer steps
    epochs: float
    final_loss: float | None  # the last logged loss
    train_loss: float  # the trainer's mean loss over the run
    losses: list[dict[str, float | int]]  # every logged entry (loss, learning rate, stage metrics) with its step
    train_seconds: float
    wall_seconds: float  # data preparation and saving included
    tokens: int
    tokens_per_second: float | None
    device: str
    processes: int = 1
    global_batch: int
    config: dict[str, Any]  # the stage's settings

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / SUMMARY_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> TrainingSummary:
        """The summary in a student directory (``FileNotFoundError`` when it has none)."""
        return cls.model_validate(json.loads((Path(directory) / SUMMARY_FILE).read_text(encoding="utf-8")))
