"""Extract the facts of ALFWorld's household vocabulary into ``environments/household/data/vocab.json``.

This is a one-off development script. It is *not* imported at runtime: our household environment reads
the committed JSON through ``environments.household.vocab.load_vocab()`` and never imports alfworld.

Run it once with the ``official`` extra installed, then commit the output::

    pip install -e '.[official]'          # provides alfworld==0.4.2
    python scripts/dev/extract_household_vocab.py
    git add environments/household/data/vocab.json

Sources (all inside the alfworld package):

* ``alfworld.gen.constants``: OBJECTS, RECEPTACLES, MOVABLE_RECEPTACLES, OPENABLE_CLASS_LIST,
  VAL_RECEPTACLE_OBJECTS (which object types each receptacle type may hold), VAL_ACTION_OBJECTS
  (heatable/coolable/cleanable/toggleable/sliceable), SCENE_TYPE (floor plan numbers per room type),
  GOALS_VALID (room types per task type), OBJECTS_SINGULAR (lowercase text names);
* ``alfworld.gen.goal_library.gdict``: the goal description templates per task type;
* ``alfworld/gen/layouts/FloorPlanN-objects.json`` (object types present in floor plan N) and
  ``FloorPlanN-openable.json`` (receptacle instances, keyed ``Type|x|y|z`` or ``Sink|x|y|z|SinkBasin``).

The selection rules are documented next to each step below; the output is pretty-printed with sorted keys
so that re-running the script gives a byte-identical file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from environments.household.vocab import ROOM_TYPES, TASK_TYPES

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "environments" / "household" / "data" / "vocab.json"

# ALFWorld's text games name the basin, not the fixture (layout ids look like 'Sink|...|SinkBasin').
BASIN_NAMES = {"Sink": "SinkBasin", "Bathtub": "BathtubBasin"}

# Lamps are switched on where they stand: present in rooms, toggleable, never carried.
LAMPS = ("DeskLamp", "FloorLamp")


AFFORDANCE_KEYS = {
    "heatable": "Heatable",
    "coolable": "Coolable",
    "cleanable": "Cleanable",
    "toggleable": "Toggleable",
    "sliceable": "Sliceable",
}


def _basin(type_: str) -> str:
    return BASIN_NAMES.get(type_, type_)


def _is_sliced(type_: str) -> bool:
    return type_.endswith("Sliced")


def _instance_type(instance_id: str) -> str:
    """Receptacle type of an openable.json key: the part before the first '|', unless it ends in a basin."""
    parts = instance_id.split("|")
    if parts[-1] in ("SinkBasin", "BathtubBasin"):
        return parts[-1]
    return _basin(parts[0])


def build_vocab(constants: Any, goal_library: Any, layouts_dir: Path) -> dict[str, Any]:
    c = constants
    objects_all = set(c.OBJECTS)
    movable = set(c.MOVABLE_RECEPTACLES)

    # Static receptacles: RECEPTACLES minus the movable ones, named as the text games name them. Types that
    # are not ALFWorld object classes (e.g. 'PaintingHanger', never placed in any floor plan) are dropped.
    receptacle_types = sorted(
        {_basin(r) for r in c.RECEPTACLES if r not in movable} & (objects_all | set(BASIN_NAMES.values()))
    )
    receptacle_set = set(receptacle_types)

    # Portable objects: the OBJECTS that some receptacle may hold (values of VAL_RECEPTACLE_OBJECTS, which
    # include the movable receptacles), plus the two lamps; never a sliced variant or a static receptacle.
    containable = set().union(*c.VAL_RECEPTACLE_OBJECTS.values())
    object_types = sorted(
        t
        for t in objects_all & (containable | set(LAMPS))
        if not _is_sliced(t) and t not in receptacle_set and t not in BASIN_NAMES
    )
    object_set = set(object_types)

    openable_receptacles = sorted(t for t in c.OPENABLE_CLASS_LIST if t in receptacle_set)

    can_contain: dict[str, list[str]] = {}
    for recep, held in c.VAL_RECEPTACLE_OBJECTS.items():
        rtype = _basin(recep)
        if rtype not in receptacle_set:
            continue  # movable receptacles (Bowl, Pot, ...) are objects here
        can_contain[rtype] = sorted(o for o in held if o in object_set and not _is_sliced(o))

    affordances: dict[str, list[str]] = {
        key: sorted(o for o in c.VAL_ACTION_OBJECTS[src] if o in object_set and not _is_sliced(o))
        for key, src in AFFORDANCE_KEYS.items()
    }
    affordances["pickupable"] = [o for o in object_types if o not in LAMPS]

    rooms: dict[str, list[dict[str, Any]]] = {}
    for room_type in ROOM_TYPES:
        entries = []
        for num in c.SCENE_TYPE[room_type]:
            name = f"FloorPlan{num}"
            present = json.loads((layouts_dir / f"{name}-objects.json").read_text())
            openable = json.loads((layouts_dir / f"{name}-openable.json").read_text())
            counts = Counter(_instance_type(k) for k in openable)
            # Static receptacles listed in objects.json but without instances in openable.json (StoveBurner,
            # Toaster, CoffeeMachine, GarbageCan, ...) count once. A fixture counts as listed in openable.json
            # when any key starts with its name: FloorPlan420's bathtub basin is keyed
            # 'Bathtub|...|SinkBasin' (a second SinkBasin), so its 'Bathtub' must not add a BathtubBasin too.
            fixtures_in_openable = {k.split("|")[0] for k in openable}
            for t in present:
                if t in fixtures_in_openable:
                    continue
                t = _basin(t)
                if t in receptacle_set and t not in counts:
                    counts[t] = 1
            entries.append(
                {
                    "floorplan": name,
                    "receptacles": {t: n for t, n in sorted(counts.items()) if t in receptacle_set},
                    "objects": sorted(set(present) & object_set),
                }
            )
        rooms[room_type] = entries

    task_types = {t: sorted(c.GOALS_VALID[t]) for t in TASK_TYPES}
    goal_templates = {t: list(goal_library.gdict[t]["templates"]) for t in TASK_TYPES}

    # Text names are the lowercase type names. OBJECTS_SINGULAR is the source, but it is not index-aligned
    # with OBJECTS (alfworld 0.4.2 has 'sidetable' 'teddybear' fused into 'sidetableteddybear' by a missing
    # comma), so look names up as a set and fall back to str.lower().
    known_names = set(c.OBJECTS_SINGULAR) | {r.lower() for r in c.RECEPTACLES}
    singular_names = {t: t.lower() for t in sorted(object_set | receptacle_set)}
    unknown = sorted(t for t, n in singular_names.items() if n not in known_names)
    if unknown:
        print(f"note: not in OBJECTS_SINGULAR/RECEPTACLES, using str.lower(): {unknown}", file=sys.stderr)

    return {
        "object_types": object_types,
        "receptacle_types": receptacle_types,
        "openable_receptacles": openable_receptacles,
        "can_contain": can_contain,
        "affordances": affordances,
        "rooms": rooms,
        "task_types": task_types,
        "goal_templates": goal_templates,
        "singular_names": singular_names,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write vocab.json")
    args = parser.parse_args(argv)

    try:
        import alfworld.gen.constants as constants
        import alfworld.gen.goal_library as goal_library
    except ImportError as exc:  # pragma: no cover - dev-only path
        raise SystemExit("alfworld is not installed; run: pip install -e '.[official]'") from exc

    layouts_dir = Path(constants.__file__).parent / "layouts"
    if not any(re.match(r"FloorPlan\d+-objects\.json$", p.name) for p in layouts_dir.iterdir()):
        raise SystemExit(f"no floor plan layouts found in {layouts_dir}")

    vocab = build_vocab(constants, goal_library, layouts_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(vocab, indent=2, sort_keys=True) + "\n")
    print(
        f"wrote {args.out}: {len(vocab['object_types'])} object types, "
        f"{len(vocab['receptacle_types'])} receptacle types, "
        f"{sum(len(v) for v in vocab['rooms'].values())} floor plans"
    )


if __name__ == "__main__":
    main()
