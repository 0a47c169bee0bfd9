"""ALFWorld-style household tasks (ALFWorld 0.4.x dialect), native engine and official backend.

    from environments.household import HouseholdEnv, load_split
    env = HouseholdEnv()
    task = load_split("valid_unseen")[3]
    obs = env.reset(task)
    obs, reward, done, info = env.step("go to countertop 1")
"""

from .env import BACKENDS, HouseholdEnv, normalize_action, task_from_game_file
from .expert import HouseholdExpert, solve
from .games import SkippedGamesWarning, load_game_folder
from .generator import MAX_STEPS, SPLIT_SIZES, TASK_TYPES, world_for_task
from .pddl import GameFileError, export_game, load_game
from .splits import get_task, load_split
from .world import World

__all__ = [
    "BACKENDS", "MAX_STEPS", "SPLIT_SIZES", "TASK_TYPES", "GameFileError", "HouseholdEnv", "HouseholdExpert",
    "SkippedGamesWarning", "World", "export_game", "get_task", "load_game", "load_game_folder", "load_split",
    "normalize_action", "solve", "task_from_game_file", "world_for_task",
]
