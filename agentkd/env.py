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
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from agentkd.schema import Task

__all__ = ["Env", "has_expert", "task_at"]


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


def task_at(tasks: list[Task], split: str, index: int) -> Task:
    """``tasks[index]`` of a split, with an error that names the split's range (each env's ``get_task``)."""
    if not 0 <= index < len(tasks):
        raise IndexError(f"{split} has tasks 0..{len(tasks) - 1}; no task {index}")
    return tasks[index]
