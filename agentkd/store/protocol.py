"""`TrajectoryStore`: what recording code needs from a store of trajectories.

:class:`~agentkd.store.ExperienceStore` meets it, and so does ``agentkd.eval.run.MemoryStore``, the
in-memory stand-in evaluations collect into. Functions that only record trajectories (collection,
evaluation runs) take a ``TrajectoryStore``; those that search or iterate take an ``ExperienceStore``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from agentkd.schema import Trajectory

__all__ = ["TrajectoryStore"]


@runtime_checkable
class TrajectoryStore(Protocol):
    """Trajectories by id: which are there, write some (idempotent by id), read one."""

    def has(self, ids: Iterable[str]) -> set[str]:
        """Which of these trajectory ids are stored."""
        ...

    def upsert(self, trajectories: Trajectory | Iterable[Trajectory]) -> int:
        """Write trajectories (the last version of an id wins); returns how many."""
        ...

    def get(self, trajectory_id: str) -> Trajectory | None:
        """The stored trajectory, or None."""
        ...
