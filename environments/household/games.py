"""A folder of ALFWorld games as a split: ``json_2.1.1/valid_unseen`` and its like (``*/*/game.tw-pddl``).

Each ``game.tw-pddl`` under the folder becomes one task, in sorted path order. Its id is
``household/<folder name>/<path of the game's folder>``, e.g.
``household/valid_unseen/pick_and_place_simple-Mug-None-Desk-308/trial_T20190908_222917_366542``, and its
split is the folder's name, so the same folder always gives the same tasks.

The native engine plays the games it can read. A game it cannot (sliced objects, movable
receptacles) is played by the official engine when that is installed (``pip install -e '.[official]'``;
its expert then follows the game's ``walkthrough``); otherwise it is skipped, and a
:class:`SkippedGamesWarning` lists each skipped game with the reason.
"""

from __future__ import annotations

import json
import warnings
from importlib.util import find_spec
from pathlib import Path

from agentkd.schema import Task
from agentkd.splits import SplitFileError, split_name

from .pddl import GameFileError, goal_sentence, load_game

__all__ = ["GAME_FILE", "SkippedGamesWarning", "load_game_folder", "official_installed"]

GAME_FILE = "game.tw-pddl"
_OFFICIAL_MODULES = ("textworld", "alfworld", "fast_downward")


class SkippedGamesWarning(UserWarning):
    """Some games of a folder cannot be played; the message lists each with the reason."""


def official_installed() -> bool:
    """Whether the official ALFWorld engine can be imported (without importing it)."""
    return all(find_spec(module) is not None for module in _OFFICIAL_MODULES)


def _official_task(file: Path, task_id: str, split: str, index: int) -> Task:
    """A task the official engine plays: goal from the grammar, type from ALFWorld's folder name."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GameFileError(str(file), f"not a JSON game file ({exc})") from exc
    if not isinstance(data, dict) or not all(k in data for k in ("pddl_domain", "grammar", "pddl_problem")):
        raise GameFileError(str(file), "not a tw-pddl game file")
    try:
        goal = goal_sentence(data["grammar"])
    except ValueError as exc:
        raise GameFileError(str(file), str(exc)) from exc
    task_type = file.parent.parent.name.split("-")[0] or "unknown"  # pick_and_place_simple-Mug-None-Desk-308
    return Task(task_id=task_id, env="household", split=split, task_type=task_type,
                goal=goal if goal.endswith(".") else goal + ".", index=index,
                params={"game_file": str(file.resolve()), "backend": "official"})


def load_game_folder(path: Path) -> list[Task]:
    """The tasks of every ``game.tw-pddl`` under ``path`` (or of ``path`` itself, one game file)."""
    path = Path(path)
    split = split_name(str(path))
    files = [path] if path.is_file() else sorted(path.rglob(GAME_FILE))
    if not files:
        raise SplitFileError(path, None, f"no {GAME_FILE} files in this folder (expected ALFWorld's layout, "
                                         f"json_2.1.1/<split>/<task>/<trial>/{GAME_FILE})")
    official = official_installed()
    tasks: list[Task] = []
    skipped: list[str] = []
    for file in files:
        where = file.stem if file == path else file.parent.relative_to(path).as_posix()
        task_id = f"household/{split}/{where}"
        try:
            world = load_game(file)
        except GameFileError as exc:
            try:
                task = _official_task(file, task_id, split, len(tasks))
            except GameFileError as unreadable:  # no engine reads it
                skipped.append(f"{file}: {unreadable.problem}")
                continue
            if official:
                tasks.append(task)
            else:
                skipped.append(f"{file}: {exc.problem} (the official engine would play it: "
                               "pip install -e '.[official]')")
            continue
        tasks.append(Task(task_id=task_id, env="household", split=split, task_type=world.goal.task_type,
                          goal=world.goal_text, index=len(tasks), params={"game_file": str(file.resolve())}))
    if skipped:
        warnings.warn(SkippedGamesWarning(f"{path}: skipped {len(skipped)} of {len(files)} games:\n  "
                                          + "\n  ".join(skipped)), stacklevel=2)
    if not tasks:
        raise SplitFileError(path, None, f"none of its {len(files)} games can be played; first: {skipped[0]}")
    return tasks
