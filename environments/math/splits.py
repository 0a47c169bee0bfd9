"""The math splits: ``train``, ``valid_seen``, ``valid_unseen``, or a GSM8K-style JSONL file."""

from __future__ import annotations

from agentkd.schema import Task
from agentkd.splits import Splits

from .generator import SPLIT_SIZES, build_split
from .gsm8k import load_gsm8k

__all__ = ["SPLITS", "get_task", "load_split"]

SPLITS = Splits("math", SPLIT_SIZES, build=build_split, from_path=load_gsm8k,
                path_help='a GSM8K-style .jsonl file of {"question", "answer": "... #### N"}')


def load_split(split: str) -> list[Task]:
    """The tasks of a split (`train`, `valid_seen`, `valid_unseen`; always the same for a name), or of a
    GSM8K-style JSONL file (see :mod:`environments.math.gsm8k`)."""
    return SPLITS.load(split)


def get_task(split: str, index: int) -> Task:
    """Task ``index`` of a split."""
    return SPLITS.get(split, index)
