"""Environment registry: names on the command line → environment instances and task splits."""

from __future__ import annotations

from agentkd.env import Env
from agentkd.schema import Task

ENV_NAMES = ("household", "qa", "math")
#: How each environment's actions are written: one command line ("text") or a Python block ("code").
ACTION_FORMATS = {"household": "text", "qa": "code", "math": "code"}
#: Per environment: (step limit of an evaluated episode, token cap of a student's reply). Code replies
#: are longer than household commands; QA and math episodes need a few steps only.
EPISODE_LIMITS = {"household": (20, 96), "qa": (8, 192), "math": (6, 256)}


def action_format(name: str) -> str:
    """``"code"`` for environments whose actions are Python code, else ``"text"`` (also for unknown names)."""
    return ACTION_FORMATS.get(name, "text")


def is_code(name: str) -> bool:
    """Whether the environment's actions are Python code (see :data:`ACTION_FORMATS`)."""
    return action_format(name) == "code"


def _check(name: str) -> None:
    if name not in ENV_NAMES:
        raise ValueError(f"unknown environment {name!r}; available: {', '.join(ENV_NAMES)}")


def make_env(name: str, **kwargs) -> Env:
    """A fresh environment instance (one per concurrent episode)."""
    _check(name)
    if name == "household":
        from environments.household import HouseholdEnv

        return HouseholdEnv(**kwargs)
    from environments.code_env import CodeEnv

    return CodeEnv(name, **kwargs)


def load_tasks(name: str, split: str) -> list[Task]:
    _check(name)
    from importlib import import_module

    return import_module(f"environments.{name}").load_split(split)
