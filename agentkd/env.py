"""The environment protocol every agentkd environment implements.

Household, QA and math environments all expose the same small, gym-like surface so that agents,
policies, recorders and replay can drive any of them::

    obs = env.reset(task)
    while True:
        action = policy(obs, env.admissible_actions())
        obs, reward, done, info = env.step(action)
        if done:
            break

An environment may also offer a scripted expert, used to record reference trajectories and to
act as the teacher in tests. It does so by defining the optional method::

    def expert_action(self) -> tuple[str, str] | None:
        '''(thought, action) the expert takes in the current state, or None when it has none.'''

It is left out of the protocol so that environments without an expert still satisfy it; check
for it with :func:`has_expert`.

Each environment declares itself to the registry (:mod:`agentkd.envs`) with an :class:`EnvSpec`:
its name, how its actions are written, its episode limits, task types, splits and factory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from agentkd.errors import AgentKDError
from agentkd.schema import Task
from agentkd.splits import task_at

__all__ = ["ACTION_FORMATS", "Env", "EnvSpec", "EnvSpecError", "has_expert", "task_at"]

#: How an environment's actions are written: one command line, or a block of Python code.
ACTION_FORMATS = ("text", "code")


@runtime_checkable
class Env(Protocol):
    """A text environment: observations and actions are strings.

    ``isinstance(obj, Env)`` checks only that the members exist, not their signatures.
    """

    name: str
    """Short environment name, matching ``Task.env`` (e.g. ``"household"``)."""

    def reset(self, task: Task) -> str:
        """Start ``task`` from scratch and return the first observation."""
        ...

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        """Apply ``action``; return ``(observation, reward, done, info)``.

        Invalid actions are not errors: they return an observation that says so (and may set
        ``info`` keys), because models do emit them and the episode must go on.
        """
        ...

    def admissible_actions(self) -> list[str] | None:
        """Actions valid in the current state, or ``None`` where the action space is open-ended."""
        ...


def has_expert(env: object) -> bool:
    """Whether ``env`` offers the optional ``expert_action()`` method."""
    return callable(getattr(env, "expert_action", None))


class EnvSpecError(AgentKDError, ValueError):
    """An environment declaration that cannot be used (a bad field, or an entry point that is no spec)."""


@dataclass(frozen=True)
class EnvSpec:
    """What the rest of agentkd needs to know about an environment, declared by the environment itself.

    Example (a package's ``agentkd.environments`` entry point points at such an object)::

        SPEC = EnvSpec(name="lights", action_format="text", max_steps=10, max_new_tokens=32,
                       task_types=("switch",), splits=("train", "valid_unseen"),
                       load_split=load_split, make_env=LightsEnv)

    Args:
        name: the name on the command line and in ``Task.env``.
        action_format: ``"text"`` (one command per step) or ``"code"`` (a Python block per step, run in a sandbox).
        max_steps: the step limit of an evaluated episode.
        max_new_tokens: the token cap of a student's reply.
        task_types: the task types, in the order reports list them.
        splits: the named splits ``load_split`` knows.
        load_split: ``load_split(split)`` → the tasks of a named split, or of a path to the user's own files.
        make_env: ``make_env(max_steps=N, **options)`` → a fresh environment (one per concurrent episode).
        description: one line for ``--help`` texts and listings.
    """

    name: str
    action_format: Literal["text", "code"]
    max_steps: int
    max_new_tokens: int
    task_types: tuple[str, ...]
    splits: tuple[str, ...]
    load_split: Callable[[str], list[Task]]
    make_env: Callable[..., Env]
    description: str = ""

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.name, str) or not self.name.strip() or self.name != self.name.strip():
            problems.append(f"name must be a non-empty word, not {self.name!r}")
        if self.action_format not in ACTION_FORMATS:
            problems.append(f"action_format must be one of {', '.join(ACTION_FORMATS)}, not {self.action_format!r}")
        for field in ("max_steps", "max_new_tokens"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{field} must be a positive int, not {value!r}")
        for field in ("task_types", "splits"):
            value = getattr(self, field)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                problems.append(f"{field} must be a tuple of names, not {value!r}")
        for field in ("load_split", "make_env"):
            if not callable(getattr(self, field)):
                problems.append(f"{field} must be callable")
        if problems:
            raise EnvSpecError(f"environment spec {self.name!r}: " + "; ".join(problems))
        object.__setattr__(self, "task_types", tuple(self.task_types))
        object.__setattr__(self, "splits", tuple(self.splits))

    @property
    def is_code(self) -> bool:
        """Whether actions are Python code."""
        return self.action_format == "code"
