"""The household explorer: the expert's competence without its privileged placement priors.

It takes, cleans, heats, cools, switches on lamps and places exactly like
:class:`~environments.household.expert.HouseholdExpert`, but it does not know where object types
tend to be: it searches the receptacles it has not looked into in a random order fixed by the task
(every receptacle is a candidate, even ones that could never hold the object). Given search-order
principles — mined from earlier episodes, see :mod:`agentkd.distill.principles.mine` — it searches
in the order their data gives for the object it is looking for instead: the receptacle types where
that object was found most often per step of effort. That is the agent of the principles ablation:
the same agent with and without the principles shown to it (as a policy:
:class:`agentkd.policies.explorer.ExplorerPolicy`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any

from agentkd.schema import SEARCH_ORDER, Principle

from .expert import HouseholdExpert, number_key
from .world import Receptacle, World

__all__ = ["HouseholdExplorer"]


class HouseholdExplorer(HouseholdExpert):
    """The expert with its search order replaced: a seeded random order, or what principles say."""

    def __init__(self, world: World, seed: str | int = 0):
        super().__init__(world)
        order = [r.id for r in world.sorted_receptacles()]
        random.Random(f"explore/{seed}").shuffle(order)
        self._rank = {rid: i for i, rid in enumerate(order)}
        self.orders: dict[str, Mapping[str, Any]] = {}  # object type -> search-order data it was shown

    def use_principles(self, principles: Iterable[Principle]) -> None:
        """Search as the shown principles say (only these: what is not shown now is not used)."""
        self.orders = {p.data["object"]: p.data for p in principles
                       if p.data.get("kind") == SEARCH_ORDER and "object" in p.data}

    def _search_order(self, otype: str) -> list[Receptacle]:
        receps = [r for r in self.world.sorted_receptacles() if r.id not in self.checked]
        data = self.orders.get(otype)
        if data is None:
            return sorted(receps, key=lambda r: self._rank[r.id])
        rates, base, closed = data.get("rates", {}), float(data.get("base_rate", 0.0)), set(data.get("closed", ()))

        def value(r: Receptacle) -> float:
            # Chance of finding it per step: a receptacle that has to be opened costs one step more.
            cost = 2.0 if r.type in closed and r.id not in self.world.opened else 1.0
            return float(rates.get(r.type, base)) / cost

        return sorted(receps, key=lambda r: (-value(r), number_key(r.name), self._rank[r.id]))
