"""Differential check of the native engine against the official ALFWorld engine.

For one task: the same game is exported to `game.tw-pddl` and played by both engines side by
side — the expert's solution, a random walk over admissible commands, and invalid commands — and
every difference in intro text, admissible-command set, feedback, reward or done is reported.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from agentkd.schema import Task

from .expert import solve
from .generator import world_for_task
from .pddl import export_game
from .world import World

INVALID_COMMANDS = (
    "", "jump", "LOOK", "go to cabinet 99", "x" * 5000, "prends la pomme \u00e0 la main", "\u2603 \U0001f600",
    "take",
)


@dataclass
class Report:
    task_id: str
    steps_compared: int = 0
    mismatches: list[str] = field(default_factory=list)
    expert_won_native: bool = False
    expert_won_official: bool = False

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _compare(report: Report, what: str, native, official) -> None:
    if native != official:
        report.mismatches.append(f"{what}:\n  native:   {native!r}\n  official: {official!r}")


def play_side_by_side(report: Report, world: World, engine, commands: list[str | None], rng: random.Random,
                      label: str) -> bool:
    """Play both engines from reset; a None command is a random admissible one."""
    world.reset()
    _compare(report, f"{label} intro", world.intro(), engine.reset())
    won = False
    for i, cmd in enumerate(commands):
        native_adm = world.admissible_commands()
        official_adm = engine.admissible_commands()
        _compare(report, f"{label} step {i} admissible", native_adm, official_adm)
        if cmd is None:
            cmd = rng.choice(native_adm)
        fb = world.step(cmd)
        won = world.goal_reached()
        ofb, oreward, odone = engine.step(cmd)
        _compare(report, f"{label} step {i} {cmd[:40]!r} feedback", fb, ofb)
        _compare(report, f"{label} step {i} {cmd[:40]!r} reward/done", (float(won), won), (oreward, odone))
        report.steps_compared += 1
    _compare(report, f"{label} final admissible", world.admissible_commands(), engine.admissible_commands())
    return won


def check_task(task: Task, walk: int = 30, seed: int = 0) -> Report:
    """Compare both engines on one task: (a) the expert's solution, (b) invalid commands at the start,
    a random walk of `walk` admissible commands, and invalid commands again wherever the walk ended."""
    from .official import OfficialEngine

    world = world_for_task(task)
    report = Report(task.task_id)
    solution = [a for _, a in solve(world) or []]
    engine = OfficialEngine(export_game(world))
    report.expert_won_native = play_side_by_side(report, world, engine, solution, random.Random(seed), "expert")
    report.expert_won_official = engine.won
    # One episode for (b) and (c): official resets are slow (Fast Downward re-translates the game).
    commands = [*INVALID_COMMANDS, *([None] * walk), *INVALID_COMMANDS]
    play_side_by_side(report, world, engine, commands, random.Random(f"{task.task_id}/{seed}"), "walk+invalid")
    return report


def expert_wins_official(task: Task) -> bool:
    """Replay the native expert's solution of `task` in the official engine; True if it wins there."""
    from .official import OfficialEngine

    world = world_for_task(task)
    solution = solve(world)
    if solution is None:
        return False
    engine = OfficialEngine(export_game(world))
    engine.reset()
    for _, action in solution:
        engine.step(action)
    return engine.won


def conformance_games(per_type_unseen: int = 5, per_type_seen: int = 4) -> list[Task]:
    """The games the conformance test plays: the first few of each task type in both validation splits."""
    from .generator import TASK_TYPES
    from .splits import load_split

    games = []
    for split, n in (("valid_unseen", per_type_unseen), ("valid_seen", per_type_seen)):
        tasks = load_split(split)
        for task_type in TASK_TYPES:
            games += [t for t in tasks if t.task_type == task_type][:n]
    return games
