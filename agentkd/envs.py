"""Environment registry: names on the command line → environment instances and task splits."""

from __future__ import annotations

from agentkd.env import Env
from agentkd.schema import Task

ENV_NAMES = ("household",)


def _check(name: str) -> None:
    if name not in ENV_NAMES:
        raise ValueError(f"unknown environment {name!r}; available: {', '.join(ENV_NAMES)}")


def make_env(name: str, **kwargs) -> Env:
    """A fresh environment instance (one per concurrent episode)."""
    _check(name)
    from environments.household import HouseholdEnv

    return HouseholdEnv(**kwargs)


def load_tasks(name: str, split: str) -> list[Task]:
    _check(name)
    from environments.household import load_split

    return load_split(split)
