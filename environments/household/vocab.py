"""ALFWorld's household vocabulary, as facts loaded from ``data/vocab.json``.

The JSON is generated once by ``scripts/dev/extract_household_vocab.py`` from the ``alfworld==0.4.2`` package
(``alfworld.gen.constants``, ``alfworld.gen.goal_library`` and the ``gen/layouts/FloorPlanN-*.json``
floor plans) and committed, so this module needs nothing but the standard library and never imports
alfworld. It records:

* ``object_types``: portable things found in receptacles (CamelCase, as in ``constants.OBJECTS``),
  including the movable receptacles (Bowl, Cup, Mug, Pan, Plate, Pot, Box) and the two lamps;
* ``receptacle_types``: static receptacles, named as ALFWorld's text games name them (``SinkBasin``,
  ``BathtubBasin``); ``openable_receptacles`` are those that must be opened (Fridge, Cabinet, ...);
* ``can_contain``: which object types each receptacle type may hold (``VAL_RECEPTACLE_OBJECTS``);
* ``affordances``: heatable / coolable / cleanable / toggleable / sliceable (``VAL_ACTION_OBJECTS``) and
  pickupable (every object type except the lamps, which are switched on where they stand);
* ``rooms``: for each room type, one entry per ALFWorld floor plan with its receptacle counts and the
  object types present;
* ``task_types`` (room types each of the six task types is generated in), ``goal_templates`` and the
  lowercase text names (``singular_names``).

Type collections are sorted tuples rather than sets so that iterating them is deterministic whatever the
hash seed (environments sample from them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

VOCAB_PATH = Path(__file__).parent / "data" / "vocab.json"

ROOM_TYPES: tuple[str, ...] = ("Kitchen", "LivingRoom", "Bedroom", "Bathroom")
TASK_TYPES: tuple[str, ...] = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
AFFORDANCES: tuple[str, ...] = ("heatable", "coolable", "cleanable", "toggleable", "sliceable", "pickupable")


@dataclass(frozen=True)
class FloorPlan:
    """One ALFWorld floor plan: how many receptacles of each type, and which object types it holds."""

    floorplan: str
    room_type: str
    receptacles: Mapping[str, int]
    objects: tuple[str, ...]


@dataclass(frozen=True)
class Vocab:
    object_types: tuple[str, ...]
    receptacle_types: tuple[str, ...]
    openable_receptacles: tuple[str, ...]
    can_contain_map: Mapping[str, tuple[str, ...]]
    affordances: Mapping[str, tuple[str, ...]]
    rooms: Mapping[str, tuple[FloorPlan, ...]]
    task_types: Mapping[str, tuple[str, ...]]
    goal_templates: Mapping[str, tuple[str, ...]]
    singular_names: Mapping[str, str]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocab:
        def tup(xs: Any) -> tuple[str, ...]:
            return tuple(xs)

        def frozen(d: Mapping[str, Any], conv: Any = tup) -> Mapping[str, Any]:
            return MappingProxyType({k: conv(v) for k, v in d.items()})

        rooms = {
            room_type: tuple(
                FloorPlan(
                    floorplan=e["floorplan"],
                    room_type=room_type,
                    receptacles=MappingProxyType(dict(e["receptacles"])),
                    objects=tup(e["objects"]),
                )
                for e in entries
            )
            for room_type, entries in data["rooms"].items()
        }
        return cls(
            object_types=tup(data["object_types"]),
            receptacle_types=tup(data["receptacle_types"]),
            openable_receptacles=tup(data["openable_receptacles"]),
            can_contain_map=frozen(data["can_contain"]),
            affordances=frozen(data["affordances"]),
            rooms=MappingProxyType(rooms),
            task_types=frozen(data["task_types"]),
            goal_templates=frozen(data["goal_templates"]),
            singular_names=frozen(data["singular_names"], str),
        )

    # -- queries -------------------------------------------------------------------------------------------

    def is_object(self, type_: str) -> bool:
        return type_ in self.object_types

    def is_receptacle(self, type_: str) -> bool:
        return type_ in self.receptacle_types

    def is_openable(self, rtype: str) -> bool:
        return rtype in self.openable_receptacles

    def can_contain(self, rtype: str, otype: str) -> bool:
        """Whether ALFWorld lets an object of type ``otype`` be put in/on a receptacle of type ``rtype``."""
        return otype in self.can_contain_map.get(rtype, ())

    def receptacles_for(self, otype: str) -> list[str]:
        """Sorted receptacle types that may hold ``otype`` (empty for lamps and unknown types)."""
        return sorted(r for r, held in self.can_contain_map.items() if otype in held)

    def has(self, affordance: str, otype: str) -> bool:
        """Whether ``otype`` has ``affordance`` (one of :data:`AFFORDANCES`, e.g. ``"heatable"``)."""
        try:
            members = self.affordances[affordance]
        except KeyError:
            raise ValueError(f"unknown affordance {affordance!r}; expected one of {AFFORDANCES}") from None
        return otype in members

    def name(self, type_: str) -> str:
        """The lowercase text name of an object or receptacle type ('SinkBasin' -> 'sinkbasin')."""
        try:
            return self.singular_names[type_]
        except KeyError:
            raise KeyError(f"unknown household type {type_!r}") from None

    def floorplans(self, room_type: str | None = None) -> tuple[FloorPlan, ...]:
        """Floor plans of one room type, or of all room types in :data:`ROOM_TYPES` order."""
        if room_type is not None:
            return self.rooms[room_type]
        return tuple(fp for rt in ROOM_TYPES for fp in self.rooms.get(rt, ()))

    def task_room_types(self, task_type: str) -> tuple[str, ...]:
        """Room types in which ALFWorld generates ``task_type``."""
        return self.task_types[task_type]


@lru_cache(maxsize=1)
def load_vocab() -> Vocab:
    """Load (once) the committed ALFWorld vocabulary facts."""
    with VOCAB_PATH.open(encoding="utf-8") as fh:
        return Vocab.from_dict(json.load(fh))
