"""The QA splits: ``train``, ``valid_seen``, ``valid_unseen`` of the generated world, or HotpotQA files."""

from __future__ import annotations

from agentkd.schema import Task
from agentkd.splits import Splits

from .generator import SPLIT_SIZES, build_split
from .hotpot import load_hotpot_split
from .world import WORLD_SEED

__all__ = ["SPLITS", "get_task", "load_split"]

SPLITS = Splits("qa", SPLIT_SIZES, build=build_split, from_path=load_hotpot_split,
                path_help="a HotpotQA .json/.jsonl with context paragraphs, or a folder with questions.jsonl "
                          "and corpus.jsonl")


def load_split(split: str, world_seed: int = WORLD_SEED) -> list[Task]:
    """The tasks of a split (``train``, ``valid_seen``, ``valid_unseen``; always the same for a name), or of a
    HotpotQA question file or folder (see :mod:`environments.qa.hotpot`)."""
    return SPLITS.load(split, world_seed)


def get_task(split: str, index: int, world_seed: int = WORLD_SEED) -> Task:
    """Task ``index`` of a split."""
    return SPLITS.get(split, index, world_seed)
