"""`HouseholdEnv`: the household game behind agentkd's environment protocol.

Two backends play the same games: `native` (this package's engine, the default) and `official`
(ALFWorld's engine through TextWorld, for checking and for users who want the reference). Tasks
come from `load_split` or from an official `game.tw-pddl` file (`task_from_game_file`).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from agentkd.errors import ConfigError
from agentkd.schema import Task

from .expert import HouseholdExpert
from .generator import MAX_STEPS, world_for_task
from .pddl import export_game, load_game
from .world import NOTHING_HAPPENS, World

# ALFWorld 0.3 said "put X in/on Y" where 0.4 says "move X to Y"; agents trained on either work.
_PUT_ALIAS = re.compile(r"^put (.+?) (?:in|on|in/on) (.+)$")
BACKENDS = ("native", "official")


def normalize_action(action: Any) -> str:
    """The command as the engine should see it: stripped, with the 0.3 `put` form rewritten."""
    if not isinstance(action, str):
        return ""
    action = action.strip()
    match = _PUT_ALIAS.match(action)
    return f"move {match.group(1)} to {match.group(2)}" if match else action


def task_from_game_file(path: str | Path, split: str = "custom") -> Task:
    """A `Task` that plays an official `game.tw-pddl` file."""
    world = load_game(path)
    return Task(task_id=f"household/file/{Path(path).resolve()}", env="household", split=split,
                task_type=world.goal.task_type, goal=world.goal_text,
                params={"game_file": str(Path(path).resolve())})


def _walkthrough(game_file: str) -> list[str]:
    """The commands of a game file's ``walkthrough`` (ALFWorld's games carry one), or [] without one."""
    data = json.loads(Path(game_file).read_text(encoding="utf-8"))
    steps = data.get("walkthrough") if isinstance(data, dict) else None
    return [str(step) for step in steps] if isinstance(steps, list) else []


class HouseholdEnv:
    """ALFWorld-style household tasks. `reset(task)` → intro text; `step(action)` → (obs, reward, done, info)."""

    name = "household"

    def __init__(self, backend: str = "native", max_steps: int = MAX_STEPS):
        if backend not in BACKENDS:
            raise ConfigError(f"unknown household backend {backend!r}; available: {', '.join(BACKENDS)}")
        self.backend = backend
        self.max_steps = max_steps
        self.task: Task | None = None
        self.world: World | None = None
        self._official = None
        self._expert: HouseholdExpert | None = None
        self._walkthrough: list[str] | None = None

    def __deepcopy__(self, memo: dict) -> HouseholdEnv:
        """A copy that plays on independently (the expert's lookahead uses one); not of an official game, whose
        state lives in the engine's process."""
        if self._official is not None:
            raise TypeError("a game on the official engine cannot be copied")
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        clone.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return clone

    # ---- protocol -------------------------------------------------------------------------------

    def reset(self, task: Task) -> str:
        self.task = task
        game_file = task.params.get("game_file")
        self.steps = 0
        self.done = False
        self._expert = None
        self._official = None
        self._walkthrough = None
        if task.params.get("backend") == "official":  # a game only the official engine reads (see games.py)
            from .official import OfficialEngine

            self.world = None
            self._official = OfficialEngine(game_file)
            self._walkthrough = _walkthrough(game_file)
            return self._official.reset()
        self.world = load_game(game_file) if game_file else world_for_task(task)
        self.world.reset()
        if self.backend == "official":
            from .official import OfficialEngine

            self._official = OfficialEngine(game_file or export_game(self.world))
            return self._official.reset()
        return self.world.intro()

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if self.world is None and self._official is None:
            raise RuntimeError("call reset(task) before step()")
        if self.done:
            raise RuntimeError("the episode is over; call reset(task) to start another")
        command = normalize_action(action)
        if self.world is None:  # the official engine alone
            admissible = command in self._official.admissible_commands()
            obs, _, won = self._official.step(command) if command else (NOTHING_HAPPENS, 0, False)
        elif self._official is not None:
            admissible = command in self.world.actions()
            obs, _, won = self._official.step(command) if command else (NOTHING_HAPPENS, 0, False)
            if admissible:  # keep the native state in step for the expert and the goal check
                self.world.step(command)
        else:
            admissible = command in self.world.actions()
            obs = self.world.step(command) if command else NOTHING_HAPPENS
            won = self.world.goal_reached()
        self.steps += 1
        self.done = won or self.steps >= self.max_steps
        # The next admissible commands are not repeated here: callers ask admissible_actions() when they need them.
        info = {"won": won, "admissible": admissible, "steps": self.steps}
        return obs, 1.0 if won else 0.0, self.done, info

    def admissible_actions(self) -> list[str]:
        if self._official is not None:
            return self._official.admissible_commands()
        if self.world is None:
            raise RuntimeError("call reset(task) first")
        return self.world.admissible_commands()

    def expert_action(self) -> tuple[str, str] | None:
        """The expert's (thought, action) from the current state; None once the episode is over.

        For a game only the official engine plays, the expert follows the game's walkthrough (None without one).
        """
        if self.done:
            return None
        if self.world is None:
            if not self._walkthrough or self.steps >= len(self._walkthrough):
                return None
            return (f"The walkthrough's step {self.steps + 1} of {len(self._walkthrough)}.",
                    self._walkthrough[self.steps])
        if self._expert is None:
            self._expert = HouseholdExpert(self.world)
        return self._expert.act()
