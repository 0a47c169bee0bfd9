"""Household engine benchmark: the native engine against the official ALFWorld engine.

Both play the same games and the same command sequences, admissible commands computed at every step in both.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass


@dataclass
class EnvBenchResult:
    games: int
    steps: int
    native_ms_per_step: float
    official_ms_per_step: float
    native_reset_ms: float
    official_reset_ms: float

    @property
    def speedup(self) -> float:
        return self.official_ms_per_step / self.native_ms_per_step


def bench_env(games: int = 6, steps: int = 40, split: str = "valid_unseen", seed: int = 0) -> EnvBenchResult:
    """Play `games` tasks (one per task type, cycling) for `steps` random admissible commands in both
    engines; returns mean per-step and per-reset times."""
    from environments.household import TASK_TYPES, export_game, load_split, world_for_task
    from environments.household.official import OfficialEngine

    tasks = load_split(split)
    chosen = []
    for i in range(games):
        wanted = TASK_TYPES[i % len(TASK_TYPES)]
        chosen.append([t for t in tasks if t.task_type == wanted][i // len(TASK_TYPES)])
    native_steps, official_steps, native_resets, official_resets = [], [], [], []
    for task in chosen:
        world = world_for_task(task)
        rng = random.Random(f"{task.task_id}/{seed}")
        commands = []
        t0 = time.perf_counter()
        world.reset()
        world.intro()
        native_resets.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(steps):
            cmd = rng.choice(world.admissible_commands())
            world.step(cmd)
            world.goal_reached()
            commands.append(cmd)
        native_steps.append((time.perf_counter() - t0) / steps)

        engine = OfficialEngine(export_game(world))
        t0 = time.perf_counter()
        engine.reset()
        official_resets.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for cmd in commands:
            engine.admissible_commands()
            engine.step(cmd)
        official_steps.append((time.perf_counter() - t0) / steps)
    return EnvBenchResult(
        games=len(chosen), steps=steps,
        native_ms_per_step=1000 * statistics.mean(native_steps),
        official_ms_per_step=1000 * statistics.mean(official_steps),
        native_reset_ms=1000 * statistics.mean(native_resets),
        official_reset_ms=1000 * statistics.mean(official_resets),
    )
