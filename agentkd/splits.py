"""Splits: the task lists an environment offers by name (``train``), or reads from the user's own files (a path).

Every environment answers ``load_split(split)`` through one :class:`Splits`::

    SPLITS = Splits("math", SPLIT_SIZES, build=_split, from_path=load_gsm8k)
    SPLITS.load("valid_unseen")          # a named split, built once and cached by the builder
    SPLITS.load("data/gsm8k/test.jsonl")  # the user's own tasks; their split is named "test"
    SPLITS.get("valid_unseen", 3)        # one task, with an error naming the split's range

A split is a path when it names an existing file or folder, or is written like one (it holds a path
separator, or starts with ``.`` or ``~``). Tasks read from a path carry :func:`split_name` of it (a
folder's name, a file's stem) as their ``split``, so ``--split`` filters on the store and in training
take the same path (or that name) and find them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from agentkd.errors import AgentKDError, FileFormatError
from agentkd.schema import Task

__all__ = ["SPLIT_HELP", "SplitFileError", "Splits", "TaskIndexError", "UnknownSplitError", "is_path", "split_name",
           "task_at"]


#: What a ``--split`` takes (the CLI's and the training settings' help).
SPLIT_HELP = ("a split name (train, valid_seen, valid_unseen) or a path to your own tasks: a folder of ALFWorld "
              "games (household), a HotpotQA .json/.jsonl or folder with a corpus (qa), a GSM8K-style .jsonl (math)")


class TaskIndexError(AgentKDError, IndexError):
    """A task index outside a split; the message names the split's range."""


class UnknownSplitError(AgentKDError, ValueError):
    """A split name the environment does not have (and no file or folder of that name exists)."""


class SplitFileError(FileFormatError):
    """A split file or folder the environment cannot read: names the file, the line (where there is one) and why."""


def is_path(split: str) -> bool:
    """Whether ``split`` names the user's own tasks on disk rather than one of an environment's named splits."""
    if not split:
        return False
    if os.sep in split or (os.altsep and os.altsep in split) or split.startswith((".", "~")):
        return True
    return Path(split).exists()


def split_name(split: str) -> str:
    """The ``split`` recorded on tasks read from ``split``: a folder's name, a file's stem; a name stays itself."""
    if not is_path(split):
        return split
    path = Path(split).expanduser().resolve()
    return path.name if path.is_dir() else path.stem


def task_at(tasks: Sequence[Task], split: str, index: int) -> Task:
    """``tasks[index]`` of a split, with an error that names the split's range."""
    if not 0 <= index < len(tasks):
        raise TaskIndexError(f"{split} has tasks 0..{len(tasks) - 1}; no task {index}")
    return tasks[index]


class Splits:
    """An environment's splits: its named ones, and (with ``from_path``) the user's own files.

    Args:
        env: the environment's name (for messages).
        names: the named splits, in the order messages list them.
        build: ``build(name, *args)`` → that split's tasks; deterministic, and cached by the builder.
        from_path: ``from_path(path)`` → the tasks of the user's own file or folder; None: paths are refused.
        path_help: what a path may hold, for the message that refuses a name.
    """

    def __init__(self, env: str, names: Iterable[str], build: Callable[..., Sequence[Task]],
                 from_path: Callable[[Path], list[Task]] | None = None, path_help: str = "") -> None:
        self.env = env
        self.names = tuple(names)
        self.build = build
        self.from_path = from_path
        self.path_help = path_help

    def load(self, split: str, *args: Any) -> list[Task]:
        """The tasks of ``split``: a named split (``args`` go to the builder) or a path (see :func:`is_path`)."""
        if split in self.names:
            return list(self.build(split, *args))
        if not is_path(split):
            also = f", or a path ({self.path_help})" if self.from_path is not None and self.path_help else ""
            raise UnknownSplitError(f"unknown {self.env} split {split!r}; available: {', '.join(self.names)}{also}")
        path = Path(split).expanduser()
        if self.from_path is None:
            raise UnknownSplitError(f"{split}: the {self.env} environment reads no tasks from files; "
                                    f"available splits: {', '.join(self.names)}")
        if not path.exists():
            raise SplitFileError(path, None, "no such file or folder")
        return self.from_path(path)

    def get(self, split: str, index: int, *args: Any) -> Task:
        """Task ``index`` of ``split``."""
        return task_at(self.load(split, *args), split, index)
