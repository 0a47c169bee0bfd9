"""The household explorer as a batched policy (the agent of the principles ablation).

The explorer itself (:class:`environments.household.explorer.HouseholdExplorer`) is environment
knowledge; this wrapper is what makes it a :class:`~agentkd.policies.base.Policy`. Wrap it in a
:class:`~agentkd.distill.principles.PrinciplesPolicy` to show it principles.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from agentkd.schema import PolicyInfo
from environments.household.explorer import HouseholdExplorer
from environments.household.world import World

from .base import Decision, PolicyInput

__all__ = ["ExplorerPolicy"]


class ExplorerPolicy:
    """The explorer as a batched policy; wrap it in a principles policy to show it principles."""

    def __init__(self) -> None:
        self.info = PolicyInfo(kind="explorer", name="household-explorer")
        # One explorer per running episode, keyed by its environment; a reset builds a new world.
        self._explorers: weakref.WeakKeyDictionary[Any, HouseholdExplorer] = weakref.WeakKeyDictionary()

    def _explorer(self, inp: PolicyInput) -> HouseholdExplorer | None:
        world = getattr(inp.env, "world", None)
        if not isinstance(world, World):
            return None
        explorer = self._explorers.get(inp.env)
        if explorer is None or explorer.world is not world:
            explorer = HouseholdExplorer(world, seed=inp.task.task_id)
            self._explorers[inp.env] = explorer
        return explorer

    def act(self, inputs: list[PolicyInput]) -> list[Decision]:
        decisions = []
        for inp in inputs:
            start = time.perf_counter()
            explorer = self._explorer(inp)
            if explorer is None:
                decisions.append(Decision(action="", valid=False, error="the explorer plays household episodes only"))
                continue
            explorer.use_principles(inp.principle_records)
            try:
                thought, action = explorer.act()
            except RuntimeError as exc:  # searched everything and found nothing
                decisions.append(Decision(action="", valid=False, error=str(exc)))
                continue
            decisions.append(Decision(action=action, thought=thought, latency_s=time.perf_counter() - start))
        return decisions
