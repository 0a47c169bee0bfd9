"""The household splits: ``train``, ``valid_seen``, ``valid_unseen``, or a folder of ALFWorld games."""

from __future__ import annotations

from agentkd.schema import Task
from agentkd.splits import Splits

from .games import load_game_folder
from .generator import SPLIT_SIZES, build_split

__all__ = ["SPLITS", "get_task", "load_split"]

SPLITS = Splits("household", SPLIT_SIZES, build=build_split, from_path=load_game_folder,
                path_help="a folder of ALFWorld games, */*/game.tw-pddl")


def load_split(split: str) -> list[Task]:
    """The tasks of a split (`train`, `valid_seen`, `valid_unseen`; always the same for a name), or of a
    folder of ALFWorld games (see :mod:`environments.household.games`)."""
    return SPLITS.load(split)


def get_task(split: str, index: int) -> Task:
    """Task ``index`` of a split."""
    return SPLITS.get(split, index)
