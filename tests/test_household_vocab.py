"""Self-consistency of the committed ALFWorld household vocabulary (environments/household/data/vocab.json).

Only ``test_matches_alfworld`` needs alfworld (the ``official`` extra); the rest read the committed JSON.
"""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

from environments.household.vocab import AFFORDANCES, ROOM_TYPES, TASK_TYPES, VOCAB_PATH, Vocab, load_vocab


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return load_vocab()


def test_loads_once_and_is_read_only(vocab: Vocab) -> None:
    assert load_vocab() is vocab
    with pytest.raises(TypeError):
        vocab.can_contain_map["Fridge"] = ()  # type: ignore[index]


def test_json_is_sorted_and_pretty() -> None:
    text = VOCAB_PATH.read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_type_lists_sorted_unique_and_disjoint(vocab: Vocab) -> None:
    for types in (vocab.object_types, vocab.receptacle_types, vocab.openable_receptacles):
        assert list(types) == sorted(set(types))
    assert not set(vocab.object_types) & set(vocab.receptacle_types)
    assert not [t for t in vocab.object_types + vocab.receptacle_types if t.endswith("Sliced")]
    assert set(vocab.openable_receptacles) <= set(vocab.receptacle_types)
    assert {"SinkBasin", "BathtubBasin"} <= set(vocab.receptacle_types)
    assert not {"Sink", "Bathtub"} & set(vocab.receptacle_types)
    # movable receptacles are objects here
    assert {"Bowl", "Box", "Cup", "Mug", "Pan", "Plate", "Pot"} <= set(vocab.object_types)
    assert {"Fridge", "Microwave", "Cabinet", "Drawer"} <= set(vocab.openable_receptacles)


def test_can_contain_consistent(vocab: Vocab) -> None:
    objects = set(vocab.object_types)
    for rtype, held in vocab.can_contain_map.items():
        assert rtype in vocab.receptacle_types, rtype
        assert set(held) <= objects, (rtype, set(held) - objects)
        assert list(held) == sorted(held)
    assert vocab.can_contain("Fridge", "Apple")
    assert vocab.can_contain("SinkBasin", "Mug")
    assert not vocab.can_contain("Microwave", "Pot")
    assert not vocab.can_contain("NoSuchThing", "Apple")
    assert "CounterTop" in vocab.receptacles_for("Apple")
    assert vocab.receptacles_for("DeskLamp") == []


def test_every_pickupable_object_has_somewhere_to_go(vocab: Vocab) -> None:
    homeless = [o for o in vocab.affordances["pickupable"] if not vocab.receptacles_for(o)]
    assert homeless == []


def test_affordances(vocab: Vocab) -> None:
    assert set(vocab.affordances) == set(AFFORDANCES)
    for key, members in vocab.affordances.items():
        assert set(members) <= set(vocab.object_types), key
    assert set(vocab.affordances["toggleable"]) == {"DeskLamp", "FloorLamp"}
    assert set(vocab.affordances["pickupable"]) == set(vocab.object_types) - {"DeskLamp", "FloorLamp"}
    assert vocab.has("heatable", "Potato") and vocab.has("coolable", "WineBottle")
    assert vocab.has("cleanable", "Plate") and vocab.has("sliceable", "Bread")
    assert not vocab.has("heatable", "Book")
    with pytest.raises(ValueError):
        vocab.has("edible", "Apple")


def test_names(vocab: Vocab) -> None:
    assert set(vocab.singular_names) == set(vocab.object_types) | set(vocab.receptacle_types)
    for type_, name in vocab.singular_names.items():
        assert name == type_.lower()
    assert vocab.name("SinkBasin") == "sinkbasin"
    assert vocab.name("DeskLamp") == "desklamp"
    with pytest.raises(KeyError):
        vocab.name("Sink")


def test_rooms(vocab: Vocab) -> None:
    assert set(vocab.rooms) == set(ROOM_TYPES)
    ranges = {"Kitchen": 1, "LivingRoom": 201, "Bedroom": 301, "Bathroom": 401}
    for room_type, plans in vocab.rooms.items():
        assert [fp.floorplan for fp in plans] == [f"FloorPlan{ranges[room_type] + i}" for i in range(30)]
        for fp in plans:
            assert fp.room_type == room_type
            assert fp.receptacles, fp.floorplan
            assert set(fp.receptacles) <= set(vocab.receptacle_types), fp.floorplan
            assert all(n >= 1 for n in fp.receptacles.values()), fp.floorplan
            assert set(fp.objects) <= set(vocab.object_types), fp.floorplan
            assert fp.objects, fp.floorplan
    assert len(vocab.floorplans()) == 120


def _presence(vocab: Vocab, room_type: str, rtype: str) -> int:
    return sum(rtype in fp.receptacles for fp in vocab.rooms[room_type])


def test_kitchens_and_bathrooms(vocab: Vocab) -> None:
    n = len(vocab.rooms["Kitchen"])
    counts = {r: _presence(vocab, "Kitchen", r) for r in ("Fridge", "Microwave", "SinkBasin", "StoveBurner")}
    print(f"kitchens with receptacle (of {n}): {counts}")
    # every ALFWorld kitchen (heat/cool/clean tasks) has these; require "most" to tolerate data quirks
    for rtype, k in counts.items():
        assert k >= 0.9 * n, (rtype, k, n)
    bath = _presence(vocab, "Bathroom", "SinkBasin")
    print(f"bathrooms with SinkBasin: {bath}/{len(vocab.rooms['Bathroom'])}")
    assert bath >= 0.9 * len(vocab.rooms["Bathroom"])


def test_light_rooms_have_lamps(vocab: Vocab) -> None:
    """look_at_obj_in_light needs a lamp; report how many rooms of its room types have one."""
    lamps = set(vocab.affordances["toggleable"])
    for room_type in vocab.task_room_types("look_at_obj_in_light"):
        plans = vocab.rooms[room_type]
        lit = [fp.floorplan for fp in plans if lamps & set(fp.objects)]
        print(f"{room_type}: {len(lit)}/{len(plans)} floor plans have a DeskLamp or FloorLamp")
        assert len(lit) >= len(plans) // 2


def test_task_types_and_templates(vocab: Vocab) -> None:
    assert set(vocab.task_types) == set(TASK_TYPES)
    assert set(vocab.goal_templates) == set(TASK_TYPES)
    for task, rooms in vocab.task_types.items():
        assert rooms and set(rooms) <= set(ROOM_TYPES), task
    assert set(vocab.task_room_types("pick_heat_then_place_in_recep")) == {"Kitchen"}
    for task, templates in vocab.goal_templates.items():
        assert len(templates) == 2, task
        for t in templates:
            assert "{obj}" in t
            placeholder = "{toggle}" if task == "look_at_obj_in_light" else "{recep}"
            assert placeholder in t, (task, t)


def test_object_presence_counts(vocab: Vocab) -> None:
    """Informational: how often each object type occurs across floor plans (some never do)."""
    seen = Counter(o for fp in vocab.floorplans() for o in fp.objects)
    never = sorted(set(vocab.object_types) - set(seen))
    print(f"object types never placed in any floor plan: {never}")
    assert len(never) <= 5


@pytest.mark.official
def test_matches_alfworld() -> None:
    """The committed JSON is exactly what scripts/dev/extract_household_vocab.py derives from alfworld."""
    constants = pytest.importorskip("alfworld.gen.constants")
    goal_library = pytest.importorskip("alfworld.gen.goal_library")
    script = Path(__file__).resolve().parent.parent / "scripts" / "dev" / "extract_household_vocab.py"
    spec = importlib.util.spec_from_file_location("extract_household_vocab", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    derived = module.build_vocab(constants, goal_library, Path(constants.__file__).parent / "layouts")
    assert derived == json.loads(VOCAB_PATH.read_text(encoding="utf-8"))
