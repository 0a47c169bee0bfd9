"""The native household engine: ALFWorld's `alfred` PDDL domain, hand-compiled.

The official engine grounds the domain with Fast Downward and renders text through TextWorld's
context-sensitive grammar (`alfred.twl2`) — about 15 ms a step. This module keeps the same facts in
plain Python sets and dicts, applies each action's preconditions and effects directly, and renders
the same sentences, so a step costs tens of microseconds. Every rule below names the PDDL action or
grammar symbol it mirrors; `tests/test_household_conformance.py` checks the text against the
official engine game by game.

Two details of the official engine matter for identical text:
- lists ("you see a X, a Y, and a Z") follow the sorted PDDL ids of the entities, not their names;
- display names come from ALFWorld's demangler, which numbers instances of a type in *reverse*
  sorted-id order (see `demangle_names`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

WELCOME = "-= Welcome to TextWorld, ALFRED! =-"
NOTHING_HAPPENS = "Nothing happens."

# The `help` action of alfworld's alfred.twl2 as the engine renders it (its parser drops the leading
# newline of the grammar's text; the odd spacing is the grammar's).
HELP_TEXT = (
    "Available commands:\n"
    "  look:                             look around your current location\n"
    "  inventory:                        check your current inventory\n"
    "  go to (receptacle):               move to a receptacle\n"
    "  open (receptacle):                open a receptacle\n"
    "  close (receptacle):               close a receptacle\n"
    "  take (object) from (receptacle):  take an object from a receptacle\n"
    "  move (object) to (receptacle):  place an object in or on a receptacle\n"
    "  examine (something):              examine a receptacle or an object\n"
    "  use (object):                     use an object\n"
    "  heat (object) with (receptacle):  heat an object using a receptacle\n"
    "  clean (object) with (receptacle): clean an object using a receptacle\n"
    "  cool (object) with (receptacle):  cool an object using a receptacle\n"
    "  slice (object) with (object):     slice an object using a sharp object\n"
)

# Receptacle types that the domain's CleanObject/HeatObject/CoolObject accept (lowercase, as
# Fast Downward reads them), and the object types SliceObject accepts as a knife.
SINK_TYPE, MICROWAVE_TYPE, FRIDGE_TYPE = "sinkbasin", "microwave", "fridge"
KNIFE_TYPES = frozenset({"knife", "butterknife"})


def demangle_names(ids: list[str]) -> dict[str, str]:
    """Display names exactly as ALFWorld's `Demangler` assigns them.

    `apple_bar__plus_00_dot_47_bar_...` → "apple N": instances are counted per prefix (the text
    before the first `_bar_`, plus "basin" when the id mentions a basin, so `sink_bar_..._bar_sinkbasin`
    is a "sinkbasin"), and numbered from the count down in sorted-id order. Ids without `_bar_`
    keep their text and get an empty number (the demangler's trailing space included).
    """
    ids = sorted(ids)
    counts: Counter[str] = Counter()
    for id_ in ids:
        if "_bar_" in id_:
            counts[_prefix(id_)] += 1
    next_number = dict(counts)
    names = {}
    for id_ in ids:
        if "_bar_" not in id_:
            names[id_] = f"{_unmangle(id_)} "
            continue
        prefix = _prefix(id_)
        names[id_] = f"{prefix} {next_number[prefix]}"
        next_number[prefix] -= 1
    return names


def _prefix(id_: str) -> str:
    prefix = _unmangle(id_).split("|", 1)[0]
    return prefix + "basin" if "basin" in id_ else prefix


def _unmangle(id_: str) -> str:
    for mangled, char in (("_bar_", "|"), ("_minus_", "-"), ("_plus_", "+"), ("_dot_", "."), ("_comma_", ",")):
        id_ = id_.replace(mangled, char)
    return id_


def display_list(items: list[str]) -> str:
    """TextWorld's list rendering: "nothing", "a", "a, and b", "a, b, and c"."""
    if not items:
        return "nothing"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + ", and " + items[-1]


@dataclass
class Receptacle:
    id: str
    type: str  # lowercase type name without the "type" suffix, e.g. "cabinet", "sinkbasin"
    location: str
    openable: bool = False
    name: str = ""


@dataclass
class Thing:
    """An object in the PDDL sense: anything that sits in a receptacle or in the agent's hand."""

    id: str
    type: str
    name: str = ""
    pickupable: bool = True
    cleanable: bool = False
    heatable: bool = False
    coolable: bool = False
    toggleable: bool = False
    sliceable: bool = False
    receptacle_object: bool = False  # movable receptacles (mug, bowl, ...): "This is a normal mug 1."


@dataclass
class Goal:
    """The goals of ALFWorld's six task types (alfworld/gen/goal_library.py), as direct checks."""

    task_type: str
    obj: str  # object type, lowercase
    recep: str | None = None  # receptacle type, lowercase (placement tasks)
    toggle: str | None = None  # lamp type (look_at_obj_in_light)


@dataclass
class World:
    """Static facts of a game plus its mutable state. Build one with `World.build`, then `reset()`."""

    receptacles: dict[str, Receptacle]
    things: dict[str, Thing]
    start_location: str
    initial_contents: dict[str, list[str]]  # receptacle id -> thing ids (PDDL inReceptacle)
    can_contain: set[tuple[str, str]]  # (receptacle type, object type)
    goal: Goal
    goal_text: str
    initial_at_location: set[tuple[str, str]] = field(default_factory=set)  # objectAtLocation facts
    initially_opened: set[str] = field(default_factory=set)
    initial_state: dict[str, set[str]] = field(default_factory=dict)  # "clean"/"hot"/... -> thing ids
    agent_id: str = "agent1"

    # ---- construction ---------------------------------------------------------------------------

    def __post_init__(self) -> None:
        entity_ids = [self.agent_id, self.start_location, *self.receptacles, *self.things]
        entity_ids += sorted({r.location for r in self.receptacles.values()} - {self.start_location})
        names = demangle_names(entity_ids)
        for r in self.receptacles.values():
            r.name = names[r.id]
        for t in self.things.values():
            t.name = names[t.id]
        self._recep_at: dict[str, list[Receptacle]] = defaultdict(list)
        for rid in sorted(self.receptacles):
            r = self.receptacles[rid]
            self._recep_at[r.location].append(r)
        self._sorted_receps = [self.receptacles[rid] for rid in sorted(self.receptacles)]
        self._goto = {f"go to {r.name}": r for r in self._sorted_receps}
        self.reset()

    def reset(self) -> None:
        self.location = self.start_location
        self.opened = set(self.initially_opened)
        self.contents: dict[str, set[str]] = {rid: set() for rid in self.receptacles}
        self.where: dict[str, set[str]] = defaultdict(set)  # thing id -> receptacle ids
        for rid, tids in self.initial_contents.items():
            for tid in tids:
                self.contents[rid].add(tid)
                self.where[tid].add(rid)
        self.at_location = set(self.initial_at_location)
        self.held: str | None = None
        state = self.initial_state
        self.clean: set[str] = set(state.get("clean", ()))
        self.hot: set[str] = set(state.get("hot", ()))
        self.cool: set[str] = set(state.get("cool", ()))
        self.on: set[str] = set(state.get("on", ()))
        self.toggled: set[str] = set(state.get("toggled", ()))
        self.sliced: set[str] = set(state.get("sliced", ()))
        # Negative facts the official engine adds when an effect deletes inReceptacle; the grammar's
        # "objects on the floor" query reads them.
        self.picked_from: set[tuple[str, str]] = set()
        self._actions: dict[str, tuple] | None = None

    # ---- observation text -----------------------------------------------------------------------

    def intro(self) -> str:
        receps = display_list([f"a {r.name}" for r in self._sorted_receps])
        look = f"You are in the middle of a room. Looking quickly around you, you see {receps}."
        if self._recep_at.get(self.location):
            look = self._look_text()
        return f"{WELCOME}\n\n{look}\n\nYour task is to: {self.goal_text}"

    def _look_text(self) -> str:
        here = self._recep_at.get(self.location, [])
        if not here:
            # The `look` action binds the location, and no receptacle stands at the start point.
            return "You are in the middle of a room. Looking quickly around you, you see nothing."
        # The grammar's query yields one entry per (object, receptacle) match, duplicates included.
        floor = [
            f"a {self.things[tid].name}"
            for tid in sorted({t for (t, loc) in self.at_location if loc == self.location})
            for r in here
            if (tid, r.id) in self.picked_from
        ]
        return (
            f"You are facing the {display_list([r.name for r in here])}. "
            f"Next to it, you see {display_list(floor)}."
        )

    def _contents_list(self, rid: str) -> str:
        return display_list([f"a {self.things[t].name}" for t in sorted(self.contents[rid])])

    def _examine_receptacle(self, r: Receptacle) -> str:
        if r.openable and r.id in self.opened:
            return f"The {r.name} is open. In it, you see {self._contents_list(r.id)}."
        if r.openable:
            return f"The {r.name} is closed."
        return f"On the {r.name}, you see {self._contents_list(r.id)}."

    def _examine_thing(self, t: Thing) -> str:
        i = t.id
        if t.receptacle_object:
            return f"This is a normal {t.name}. In it, you see nothing."
        clean, hot, cool, sliced = i in self.clean, i in self.hot, i in self.cool, i in self.sliced
        for condition, text in (
            (clean and hot and sliced, "This is a hot and clean sliced {}."),
            (clean and cool and sliced, "This is a cool and clean sliced {}."),
            (clean and sliced, "This is a clean sliced {}."),
            (hot and sliced, "This is a hot sliced {}."),
            (cool and sliced, "This is a cool sliced {}."),
            (clean and hot, "This is a hot and clean {}."),
            (clean and cool, "This is a cool and clean {}."),
            (hot, "This is a hot {}."),
            (clean, "This is a clean {}."),
            (cool, "This is a cold {}."),
            (t.toggleable and i in self.toggled, "This {} is on."),
            (t.sliceable and sliced, "This is a sliced {}."),
        ):
            if condition:
                return text.format(t.name)
        # The grammar's "is off" branch needs a not_istoggled fact, which no effect ever adds.
        return f"There's nothing special about {t.name}."

    def _inventory(self) -> str:
        if self.held is None:
            return "You are not carrying anything."
        return f"You are carrying: a {self.things[self.held].name}."

    # ---- actions --------------------------------------------------------------------------------

    def _accessible(self, r: Receptacle) -> bool:
        return not r.openable or r.id in self.opened

    def actions(self) -> dict[str, tuple]:
        """Every applicable grounded action, keyed by its command text (the admissible commands)."""
        if self._actions is not None:
            return self._actions
        acts: dict[str, tuple] = {"look": ("look",), "inventory": ("inventory",), "help": ("help",)}
        # Fast Downward grounds GotoLocation only between distinct locations.
        acts.update((cmd, ("goto", r)) for cmd, r in self._goto.items() if r.location != self.location)
        held = self.things[self.held] if self.held is not None else None
        if held is not None:
            acts[f"examine {held.name}"] = ("examine_thing", held)
        for r in self._recep_at.get(self.location, []):
            acts[f"examine {r.name}"] = ("examine_recep", r)
            if r.openable:
                if r.id in self.opened:
                    acts[f"close {r.name}"] = ("close", r)
                else:
                    acts[f"open {r.name}"] = ("open", r)
            accessible = self._accessible(r)
            for tid in self.contents[r.id]:
                t = self.things[tid]
                # examineObject's first disjunct (object in an open receptacle here) never grounds in
                # the official engine: only a held object can be examined.
                if accessible:
                    if t.pickupable and held is None:
                        acts[f"take {t.name} from {r.name}"] = ("take", t, r)
                if t.toggleable:
                    acts[f"use {t.name}"] = ("toggle", t)
            if held is not None:
                if accessible and (r.type, held.type) in self.can_contain:
                    acts[f"move {held.name} to {r.name}"] = ("put", held, r)
                if held.cleanable and r.type == SINK_TYPE:
                    acts[f"clean {held.name} with {r.name}"] = ("clean", held, r)
                if held.heatable and r.type == MICROWAVE_TYPE:
                    acts[f"heat {held.name} with {r.name}"] = ("heat", held, r)
                if held.coolable and r.type == FRIDGE_TYPE:
                    acts[f"cool {held.name} with {r.name}"] = ("cool", held, r)
        if held is not None and held.type in KNIFE_TYPES:
            for tid, loc in self.at_location:
                t = self.things[tid]
                if loc == self.location and t.sliceable:
                    acts[f"slice {t.name} with {held.name}"] = ("slice", t, held)
        self._actions = acts
        return acts

    def admissible_commands(self) -> list[str]:
        return sorted(self.actions())

    def step(self, command: str) -> str:
        """Apply a command; returns the feedback. Anything not admissible leaves the state as is."""
        action = self.actions().get(command.strip())
        if action is None:
            return NOTHING_HAPPENS
        self._actions = None
        kind = action[0]
        if kind == "goto":
            r = action[1]
            self.location = r.location
            return f"You arrive at {r.name}. {self._examine_receptacle(r)}"
        if kind == "look":
            return self._look_text()
        if kind == "inventory":
            return self._inventory()
        if kind == "help":
            return HELP_TEXT
        if kind == "examine_recep":
            return self._examine_receptacle(action[1])
        if kind == "examine_thing":
            return self._examine_thing(action[1])
        if kind == "open":
            r = action[1]
            self.opened.add(r.id)
            return f"You open the {r.name}. {self._examine_receptacle(r)}"
        if kind == "close":
            r = action[1]
            self.opened.discard(r.id)
            return f"You close the {r.name}."
        if kind == "take":
            t, r = action[1], action[2]
            self.contents[r.id].discard(t.id)
            self.where[t.id].discard(r.id)
            self.picked_from.add((t.id, r.id))
            self.at_location.discard((t.id, self.location))
            self.held = t.id
            return f"You pick up the {t.name} from the {r.name}."
        if kind == "put":
            t, r = action[1], action[2]
            self.contents[r.id].add(t.id)
            self.where[t.id].add(r.id)
            self.picked_from.discard((t.id, r.id))
            self.at_location.add((t.id, self.location))
            self.held = None
            return f"You move the {t.name} to the {r.name}."
        if kind == "clean":
            self.clean.add(action[1].id)
            return f"You clean the {action[1].name} using the {action[2].name}."
        if kind == "heat":
            self.hot.add(action[1].id)
            self.cool.discard(action[1].id)
            return f"You heat the {action[1].name} using the {action[2].name}."
        if kind == "cool":
            self.cool.add(action[1].id)
            self.hot.discard(action[1].id)
            return f"You cool the {action[1].name} using the {action[2].name}."
        if kind == "toggle":
            t = action[1]
            self.on ^= {t.id}
            self.toggled.add(t.id)
            return f"You turn on the {t.name}."
        if kind == "slice":
            self.sliced.add(action[1].id)
            return f"You sliced the {action[1].name} with the {action[2].name}."
        raise AssertionError(f"unhandled action kind {kind!r}")

    # ---- goal -----------------------------------------------------------------------------------

    def goal_reached(self) -> bool:
        g = self.goal
        if g.task_type == "look_at_obj_in_light":
            if self.held is None or self.things[self.held].type != g.obj:
                return False
            here = {r.id for r in self._recep_at.get(self.location, [])}
            return any(
                t.type == g.toggle and t.toggleable and t.id in self.toggled and self.where[t.id] & here
                for t in self.things.values()
            )
        needs = {
            "pick_clean_then_place_in_recep": self.clean,
            "pick_heat_then_place_in_recep": self.hot,
            "pick_cool_then_place_in_recep": self.cool,
        }.get(g.task_type)
        wanted = 2 if g.task_type == "pick_two_obj_and_place" else 1
        for r in self._sorted_receps:
            if r.type != g.recep:
                continue
            matching = [
                tid
                for tid in self.contents[r.id]
                if self.things[tid].type == g.obj and (needs is None or tid in needs)
            ]
            if len(matching) >= wanted:
                return True
        return False

    # ---- queries used by the expert and the generator ---------------------------------------------

    def receptacles_here(self) -> list[Receptacle]:
        return self._recep_at.get(self.location, [])

    def sorted_receptacles(self) -> list[Receptacle]:
        return self._sorted_receps
