"""``lights``: a tiny deterministic text game, added to agentkd through the ``agentkd.environments`` entry point.

A row of 3 to 5 lamps, some on. The goal names the lamps that must be on (all others off); the
actions are ``toggle lamp N`` and ``look``. The expert toggles the first lamp that is wrong, so an
episode takes as many steps as there are wrong lamps.

Everything agentkd needs is :data:`SPEC` (an :class:`agentkd.env.EnvSpec`): the package's
``pyproject.toml`` names it in ``[project.entry-points."agentkd.environments"]``.
"""

from __future__ import annotations

import random
from functools import cache
from typing import Any

from agentkd.env import EnvSpec
from agentkd.schema import Task
from agentkd.splits import Splits

__all__ = ["SPEC", "LightsEnv", "load_split"]

TASK_TYPES = ("all_on", "pattern")
SPLIT_SIZES = {"train": 48, "valid_unseen": 12}


def _on_text(lamps: list[int]) -> str:
    return ", ".join(f"lamp {n}" for n in lamps) if lamps else "no lamp"


@cache
def _build(split: str) -> tuple[Task, ...]:
    rng = random.Random(f"lights/{split}")
    tasks = []
    for index in range(SPLIT_SIZES[split]):
        size = rng.randint(3, 5)
        task_type = TASK_TYPES[index % len(TASK_TYPES)]
        target = [True] * size if task_type == "all_on" else [rng.random() < 0.5 for _ in range(size)]
        start = list(target)
        while start == target:  # at least one lamp is wrong
            start = [rng.random() < 0.5 for _ in range(size)]
        goal_on = [n for n, on in enumerate(target, 1) if on]
        goal = "turn on every lamp." if task_type == "all_on" else f"make {_on_text(goal_on)} the only lamps on."
        tasks.append(Task(task_id=f"lights/{split}/{index:03d}", env="lights", split=split, task_type=task_type,
                          goal=goal, index=index, params={"start": start, "target": target}))
    return tuple(tasks)


SPLITS = Splits("lights", SPLIT_SIZES, build=_build)


def load_split(split: str) -> list[Task]:
    """The tasks of ``train`` or ``valid_unseen`` (always the same)."""
    return SPLITS.load(split)


class LightsEnv:
    """The agentkd environment protocol (``reset``, ``step``, ``admissible_actions``) plus an expert."""

    name = "lights"

    def __init__(self, max_steps: int = 12) -> None:
        self.max_steps = max_steps
        self.lamps: list[bool] = []
        self.target: list[bool] = []
        self.steps = 0
        self.done = False

    def _state(self) -> str:
        return "You see " + ", ".join(f"lamp {n} {'on' if on else 'off'}" for n, on in enumerate(self.lamps, 1)) + "."

    def reset(self, task: Task) -> str:
        self.lamps, self.target = list(task.params["start"]), list(task.params["target"])
        self.steps, self.done = 0, False
        return f"{self._state()}\nYour task is to: {task.goal}"

    def admissible_actions(self) -> list[str]:
        return ["look"] + [f"toggle lamp {n}" for n in range(1, len(self.lamps) + 1)]

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if self.done:
            raise RuntimeError("the episode is over; call reset(task)")
        action = action.strip()
        admissible = action in self.admissible_actions()
        if action.startswith("toggle lamp ") and admissible:
            n = int(action.rsplit(" ", 1)[1])
            self.lamps[n - 1] = not self.lamps[n - 1]
            observation = f"Lamp {n} is now {'on' if self.lamps[n - 1] else 'off'}."
        elif action == "look":
            observation = self._state()
        else:
            observation = "Nothing happens."
        self.steps += 1
        won = self.lamps == self.target
        self.done = won or self.steps >= self.max_steps
        return observation, 1.0 if won else 0.0, self.done, {"won": won, "admissible": admissible}

    def expert_action(self) -> tuple[str, str] | None:
        wrong = [n for n, (on, want) in enumerate(zip(self.lamps, self.target, strict=True), 1) if on != want]
        if self.done or not wrong:
            return None
        n = wrong[0]
        now, want = ("on", "off") if self.lamps[n - 1] else ("off", "on")
        return f"Lamp {n} is {now} but should be {want}; I toggle it.", f"toggle lamp {n}"


SPEC = EnvSpec(
    name="lights",
    action_format="text",
    max_steps=8,
    max_new_tokens=24,
    task_types=TASK_TYPES,
    splits=SPLITS.names,
    load_split=load_split,
    make_env=LightsEnv,
    description="a row of lamps to switch to a target pattern (the agentkd example environment package)",
)
