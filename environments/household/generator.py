"""Procedural households and tasks, deterministic by seed, with ALFWorld-like splits.

A *layout* is a room built from one of ALFWorld's 120 floor plans: its receptacle types, with the
instance counts perturbed per variant, at fixed (seeded) positions — so receptacle names are stable
within a layout, as they are within an ALFWorld scene. A *task* places 1–3 instances of every object
type of the floor plan into receptacles that can hold them, picks one of the six goals that fits the
room, and words it with ALFWorld's goal templates.

Splits follow ALFWorld: `train` and `valid_seen` draw from the same layouts (different task seeds),
`valid_unseen` only from floor plans that never occur in train. Every task is checked at generation
time: its goal is reachable and the expert solves it within the step limit; a draw that fails is
redrawn with the next attempt seed, so a split is always the same list for the same name.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

from agentkd.schema import Task

from .expert import solve
from .placement import placement_weight
from .vocab import TASK_TYPES, FloorPlan, Vocab, load_vocab
from .world import Goal, Receptacle, Thing, World

# Tasks per type in each split: ALFWorld's own counts (train 3,553; valid_seen 140; valid_unseen 134).
SPLIT_COUNTS = {
    "train": dict(zip(TASK_TYPES, (790, 308, 650, 459, 533, 813), strict=True)),
    "valid_seen": dict(zip(TASK_TYPES, (35, 13, 27, 16, 25, 24), strict=True)),
    "valid_unseen": dict(zip(TASK_TYPES, (24, 18, 31, 23, 21, 17), strict=True)),
}
SPLIT_SIZES = {name: sum(counts.values()) for name, counts in SPLIT_COUNTS.items()}
# Floor plans held out of train (three per room type), the way ALFWorld holds out unseen scenes.
UNSEEN_FLOORPLANS = frozenset({
    "FloorPlan10", "FloorPlan20", "FloorPlan30",
    "FloorPlan219", "FloorPlan224", "FloorPlan229",
    "FloorPlan308", "FloorPlan318", "FloorPlan328",
    "FloorPlan414", "FloorPlan424", "FloorPlan429",
})
VARIANTS_PER_FLOORPLAN = 3
MAX_STEPS = 50
_MAX_ATTEMPTS = 50

# ---- ids ----------------------------------------------------------------------------------------


def mangle(text: str) -> str:
    """ALFWorld's PDDL-safe ids: `Apple|+00.47|-01.10` → `apple_bar__plus_00_dot_47_bar__minus_01_dot_10`."""
    for char, word in (("-", "_minus_"), ("|", "_bar_"), ("+", "_plus_"), (".", "_dot_"), (",", "_comma_")):
        text = text.replace(char, word)
    return text.lower()


def _coords(rng: random.Random) -> str:
    return "|".join(f"{rng.uniform(-4, 4):+06.2f}" for _ in range(3))


def _receptacle_id(rtype: str, rng: random.Random) -> str:
    if rtype == "SinkBasin":
        return mangle(f"Sink|{_coords(rng)}|SinkBasin")
    if rtype == "BathtubBasin":
        return mangle(f"Bathtub|{_coords(rng)}|BathtubBasin")
    return mangle(f"{rtype}|{_coords(rng)}")


def _location_id(rng: random.Random) -> str:
    return mangle(f"loc|{rng.randint(-20, 20)}|{rng.randint(-20, 20)}|{rng.choice((0, 90, 180, 270))}|"
                  f"{rng.choice((-30, 0, 30, 60))}")


# ---- layouts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    layout_id: str  # e.g. "FloorPlan12-v1"
    floorplan: FloorPlan
    receptacles: tuple[tuple[str, str, str], ...]  # (id, CamelCase type, location id)
    start_location: str


def _layout(floorplan: FloorPlan, variant: int) -> Layout:
    rng = random.Random(f"layout/{floorplan.floorplan}/{variant}")
    counts = dict(floorplan.receptacles)
    if variant > 0:
        for rtype, n in counts.items():
            if n > 1:
                counts[rtype] = max(1, n + rng.randint(-2, 2))
    if "StoveBurner" in counts:  # the floor-plan data lists one burner per stove; kitchens have 2-4
        counts["StoveBurner"] = rng.randint(2, 4)
    used: set[str] = set()
    receps = []
    for rtype in sorted(counts):
        for _ in range(counts[rtype]):
            rid, loc = _receptacle_id(rtype, rng), _location_id(rng)
            while rid in used or loc in used:
                rid, loc = _receptacle_id(rtype, rng), _location_id(rng)
            used.update((rid, loc))
            receps.append((rid, rtype, loc))
    start = _location_id(rng)
    while start in used:
        start = _location_id(rng)
    return Layout(f"{floorplan.floorplan}-v{variant}", floorplan, tuple(receps), start)


@cache
def layouts(seen: bool) -> tuple[Layout, ...]:
    """All layouts of the seen (train/valid_seen) or unseen (valid_unseen) floor plans."""
    plans = [fp for fp in load_vocab().floorplans() if (fp.floorplan in UNSEEN_FLOORPLANS) != seen]
    return tuple(_layout(fp, v) for fp in plans for v in range(VARIANTS_PER_FLOORPLAN))


@cache
def layout_by_id(layout_id: str) -> Layout:
    floorplan, _, variant = layout_id.rpartition("-v")
    for fp in load_vocab().floorplans():
        if fp.floorplan == floorplan:
            return _layout(fp, int(variant))
    raise KeyError(f"unknown layout {layout_id!r}")


# ---- tasks --------------------------------------------------------------------------------------


def _feasible_goals(vocab: Vocab, layout: Layout, objects: list[str]) -> list[Goal]:
    """Every goal of the six task types that this room and its objects allow."""
    room = layout.floorplan.room_type
    rtypes = {rtype for _, rtype, _ in layout.receptacles}
    lamps = [o for o in objects if vocab.has("toggleable", o)]
    goals = []
    for task_type in TASK_TYPES:
        if room not in vocab.task_room_types(task_type):
            continue
        tool = {"pick_clean_then_place_in_recep": ("SinkBasin", "cleanable"),
                "pick_heat_then_place_in_recep": ("Microwave", "heatable"),
                "pick_cool_then_place_in_recep": ("Fridge", "coolable")}.get(task_type)
        if tool and tool[0] not in rtypes:
            continue
        for obj in objects:
            if not vocab.has("pickupable", obj) or (tool and not vocab.has(tool[1], obj)):
                continue
            if task_type == "look_at_obj_in_light":
                goals += [Goal(task_type, obj, toggle=lamp) for lamp in lamps]
                continue
            for recep in sorted(rtypes):
                if vocab.can_contain(recep, obj) and (tool is None or recep != tool[0]):
                    goals.append(Goal(task_type, obj, recep=recep))
    return goals


def _place_objects(vocab: Vocab, layout: Layout, goal: Goal, rng: random.Random,
                   objects: list[str]) -> dict[str, tuple[str, str]]:
    """Instances of each object type → (CamelCase type, receptacle id), avoiding a solved start."""
    target_recep = goal.recep
    placements: dict[str, tuple[str, str]] = {}
    for otype in objects:
        n = rng.randint(1, 3)
        if vocab.name(otype) == goal.obj:
            n = max(n, 2 if goal.task_type == "pick_two_obj_and_place" else 1)
        options = [(rid, rtype) for rid, rtype, _ in layout.receptacles
                   if placement_weight(vocab, rtype, otype) > 0
                   and not (vocab.name(otype) == goal.obj and target_recep == vocab.name(rtype))]
        if not options:
            continue
        weights = [placement_weight(vocab, rtype, otype) for _, rtype in options]
        for _ in range(n):
            rid, _ = rng.choices(options, weights)[0]
            oid = mangle(f"{otype}|{_coords(rng)}")
            while oid in placements:
                oid = mangle(f"{otype}|{_coords(rng)}")
            placements[oid] = (otype, rid)
    return placements


def _objects(vocab: Vocab, layout: Layout) -> list[str]:
    """Object types of the floor plan that some receptacle of the layout can hold."""
    return [o for o in layout.floorplan.objects
            if any(placement_weight(vocab, rtype, o) > 0 for _, rtype, _ in layout.receptacles)]


@cache
def _task_types_allowed(layout_id: str) -> frozenset[str]:
    vocab, layout = load_vocab(), layout_by_id(layout_id)
    return frozenset(g.task_type for g in _feasible_goals(vocab, layout, _objects(vocab, layout)))


def allows(layout: Layout, task_type: str) -> bool:
    return task_type in _task_types_allowed(layout.layout_id)


def build_world(layout: Layout, seed: str, task_type: str, vocab: Vocab | None = None) -> World:
    """The household of one task: deterministic in (layout, seed, task type)."""
    vocab = vocab or load_vocab()
    rng = random.Random(f"task/{layout.layout_id}/{task_type}/{seed}")
    objects = _objects(vocab, layout)
    goals = [g for g in _feasible_goals(vocab, layout, objects) if g.task_type == task_type]
    if not goals:
        raise ValueError(f"layout {layout.layout_id} allows no {task_type} task")
    goal = rng.choice(goals)
    goal = Goal(goal.task_type, vocab.name(goal.obj), goal.recep and vocab.name(goal.recep),
                goal.toggle and vocab.name(goal.toggle))
    return _world(vocab, layout, goal, rng, objects)


def _world(vocab: Vocab, layout: Layout, goal: Goal, rng: random.Random, objects: list[str]) -> World:
    placements = _place_objects(vocab, layout, goal, rng, objects)
    receptacles = {rid: Receptacle(rid, vocab.name(rtype), loc, vocab.is_openable(rtype))
                   for rid, rtype, loc in layout.receptacles}
    things, contents = {}, {}
    for oid, (otype, rid) in placements.items():
        things[oid] = Thing(
            oid, vocab.name(otype),
            pickupable=vocab.has("pickupable", otype), cleanable=vocab.has("cleanable", otype),
            heatable=vocab.has("heatable", otype), coolable=vocab.has("coolable", otype),
            toggleable=vocab.has("toggleable", otype), sliceable=vocab.has("sliceable", otype),
            receptacle_object=otype in _MOVABLE_RECEPTACLES,
        )
        contents.setdefault(rid, []).append(oid)
    template = rng.choice(vocab.goal_templates[goal.task_type])
    text = template.format(obj=goal.obj, recep=goal.recep, toggle=goal.toggle) + "."
    rtypes = {rtype for _, rtype, _ in layout.receptacles}
    can_contain = {(vocab.name(r), vocab.name(o)) for r in rtypes for o in objects if vocab.can_contain(r, o)}
    return World(receptacles=receptacles, things=things, start_location=layout.start_location,
                 initial_contents=contents, can_contain=can_contain, goal=goal, goal_text=text)


_MOVABLE_RECEPTACLES = frozenset({"Bowl", "Box", "Cup", "Mug", "Pan", "Plate", "Pot"})


def world_for_task(task: Task) -> World:
    """Rebuild the household of a generated task from its parameters."""
    try:
        layout = layout_by_id(task.params["layout"])
        return build_world(layout, task.params["seed"], task.task_type)
    except KeyError as exc:
        raise ValueError(f"task {task.task_id!r} is not a generated household task: {exc}") from exc


def make_task(split: str, index: int, layout: Layout, task_type: str, max_steps: int = MAX_STEPS) -> Task:
    """Draw task `index` of `split` in `layout`, redrawing until the expert solves it in time."""
    for attempt in range(_MAX_ATTEMPTS):
        seed = f"{split}/{index}/{attempt}"
        world = build_world(layout, seed, task_type)
        if world.goal_reached():
            continue
        if solve(world, max_steps=max_steps) is None:
            continue
        g = world.goal
        return Task(
            task_id=f"household/{split}/{index:04d}",
            env="household",
            split=split,
            task_type=g.task_type,
            goal=world.goal_text,
            index=index,
            params={"layout": layout.layout_id, "seed": seed, "room_type": layout.floorplan.room_type,
                    "obj": g.obj, "recep": g.recep, "toggle": g.toggle},
        )
    raise RuntimeError(f"no solvable task after {_MAX_ATTEMPTS} draws for {split}/{index} in {layout.layout_id}")


@cache
def build_split(name: str) -> tuple[Task, ...]:
    """The tasks of the named split ``name`` (always the same; use :func:`environments.household.load_split`)."""
    pool = layouts(seen=name != "valid_unseen")
    rng = random.Random(f"split/{name}")
    types = [t for t, n in SPLIT_COUNTS[name].items() for _ in range(n)]
    rng.shuffle(types)
    tasks = []
    for i, task_type in enumerate(types):
        layout = rng.choice([lay for lay in pool if allows(lay, task_type)])
        tasks.append(make_task(name, i, layout, task_type))
    return tuple(tasks)
