"""Where things tend to be in a household: the placement priors.

The generator samples placements from these weights and the expert searches in the same order, like
ALFWorld's expert uses its object–receptacle priors. They live apart from both, so that the
generator can run the expert (to check every task is solvable) without an import cycle.
"""

from __future__ import annotations

from .vocab import Vocab

__all__ = ["placement_weight"]

# Open surfaces get more things than closed storage, and food and drinks favour the fridge.
_CLOSED_WEIGHT, _SURFACE_WEIGHT, _FRIDGE_FOOD_WEIGHT = 1.0, 2.0, 3.0
_APPLIANCE_TYPES = {"Microwave": 0.5, "CoffeeMachine": 2.0, "StoveBurner": 1.5, "Toaster": 0.5}
# ALFWorld's receptacle table has no entry for lamps (they stand where they are and are switched on
# in place); in its text games they stand on furniture like this.
_LAMP_STANDS = {"DeskLamp": ("Desk", "Dresser", "SideTable", "Shelf"),
                "FloorLamp": ("SideTable", "Dresser", "Desk", "Shelf", "TVStand", "CoffeeTable")}


def placement_weight(vocab: Vocab, rtype: str, otype: str) -> float:
    """Relative chance that one receptacle of type `rtype` holds a given object of type `otype`."""
    if otype in _LAMP_STANDS:
        return _SURFACE_WEIGHT if rtype in _LAMP_STANDS[otype] else 0.0
    if not vocab.can_contain(rtype, otype):
        return 0.0
    if rtype == "Fridge":
        return _FRIDGE_FOOD_WEIGHT if vocab.has("coolable", otype) else _CLOSED_WEIGHT
    if rtype in _APPLIANCE_TYPES:
        return _APPLIANCE_TYPES[rtype]
    return _CLOSED_WEIGHT if vocab.is_openable(rtype) else _SURFACE_WEIGHT
