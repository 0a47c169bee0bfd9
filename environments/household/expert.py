"""The household expert: ALFWorld's hand-coded strategy, with a ReAct-style thought per step.

Like ALFWorld's expert it knows where object types are likely to be (the placement priors of
:mod:`.placement`) but not where this household put them: it searches receptacles in order of likelihood per
step of effort (closed ones cost an extra `open`), reads only what it has seen, then cleans, heats,
cools or switches on a lamp as the task needs, and places the object. The thoughts say what it is
looking for and why, so expert trajectories are thought–action traces.
"""

from __future__ import annotations

from functools import cache

from .placement import placement_weight
from .vocab import load_vocab
from .world import FRIDGE_TYPE, MICROWAVE_TYPE, SINK_TYPE, Receptacle, World

_TOOL = {
    "pick_clean_then_place_in_recep": ("clean", SINK_TYPE),
    "pick_heat_then_place_in_recep": ("heat", MICROWAVE_TYPE),
    "pick_cool_then_place_in_recep": ("cool", FRIDGE_TYPE),
}


@cache
def _camel() -> dict[str, str]:
    return {lower: camel for camel, lower in load_vocab().singular_names.items()}


def prior(rtype: str, otype: str) -> float:
    """How promising one receptacle of `rtype` is when looking for an `otype` (lowercase types)."""
    camel = _camel()
    if rtype not in camel or otype not in camel:
        return 1.0  # types from a foreign game file: no prior, search in name order
    return placement_weight(load_vocab(), camel[rtype], camel[otype])


class HouseholdExpert:
    """Chooses (thought, action) from the world's state and what it has observed so far."""

    def __init__(self, world: World):
        self.world = world
        self.goal = world.goal
        self.checked: set[str] = set()  # receptacles whose contents it has seen
        self.seen: dict[str, str] = {}  # thing id -> receptacle id where it was seen
        self.placed: set[str] = set()  # things it already put at the goal receptacle
        self.target: Receptacle | None = None
        self.said_plan = False

    # ---- observation memory ---------------------------------------------------------------------

    def _look_around(self) -> None:
        for r in self.world.receptacles_here():
            if not r.openable or r.id in self.world.opened:
                self.checked.add(r.id)
                for tid in self.world.contents[r.id]:
                    self.seen[tid] = r.id

    # ---- helpers --------------------------------------------------------------------------------

    def _wanted(self, otype: str) -> list[str]:
        """Things of a type it has seen, still where it saw them, not already placed."""
        w = self.world
        return sorted(t for t, r in self.seen.items()
                      if w.things[t].type == otype and t not in self.placed and t in w.contents[r]
                      and (self.target is None or r != self.target.id or self.goal.task_type == "look_at_obj_in_light"))

    def _search_order(self, otype: str) -> list[Receptacle]:
        def value(r: Receptacle) -> float:
            cost = 2.0 if r.openable and r.id not in self.world.opened else 1.0
            return prior(r.type, otype) / cost

        receps = [r for r in self.world.sorted_receptacles()
                  if r.id not in self.checked and prior(r.type, otype) > 0]
        return sorted(receps, key=lambda r: (-value(r), number_key(r.name)))

    def _goto_or_act(self, r: Receptacle, why: str) -> tuple[str, str]:
        here = self.world.location == r.location
        if not here:
            return why, f"go to {r.name}"
        if r.openable and r.id not in self.world.opened:
            return f"The {r.name} is closed. I open it to look inside.", f"open {r.name}"
        return "", ""

    def _choose_target(self) -> Receptacle:
        options = [r for r in self.world.sorted_receptacles() if r.type == self.goal.recep]
        return min(options, key=lambda r: (r.openable, number_key(r.name)))

    # ---- policy ---------------------------------------------------------------------------------

    def act(self) -> tuple[str, str]:
        """The next (thought, action)."""
        self._look_around()
        g, w = self.goal, self.world
        held = w.things[w.held] if w.held is not None else None
        if g.task_type == "look_at_obj_in_light":
            if held is None or held.type != g.obj:
                return self._fetch(g.obj, held, f"then look at it under the {g.toggle}")
            return self._use_lamp()
        if self.target is None:
            self.target = self._choose_target()
        if held is not None and held.type == g.obj:
            tool = _TOOL.get(g.task_type)
            if tool and held.id not in {"clean": w.clean, "heat": w.hot, "cool": w.cool}[tool[0]]:
                return self._treat(held, *tool)
            return self._place(held)
        return self._fetch(g.obj, held, self._plan_tail())

    def _plan_tail(self) -> str:
        g = self.goal
        tool = _TOOL.get(g.task_type)
        if tool:
            return f"{tool[0]} it with a {tool[1]}, then put it in/on the {self.target.name}"
        if g.task_type == "pick_two_obj_and_place":
            return f"put it in/on the {self.target.name}, and do the same with a second {g.obj}"
        return f"put it in/on the {self.target.name}"

    def _fetch(self, otype: str, held, tail: str) -> tuple[str, str]:
        w = self.world
        if held is not None:  # only after someone else acted for it: put the wrong thing away first
            places = [r for r in w.sorted_receptacles() if (r.type, held.type) in w.can_contain]
            if not places:
                raise RuntimeError(f"nowhere to put down the {held.name}")
            r = min(places, key=lambda r: (r.location != w.location, r.openable))
            step = self._goto_or_act(r, f"I am holding the wrong thing. I take the {held.name} to the {r.name}.")
            if step[1]:
                return step
            return f"I put the {held.name} away; my hands must be free.", f"move {held.name} to {r.name}"
        found = self._wanted(otype)
        if found:
            tid = found[0]
            r = w.receptacles[self.seen[tid]]
            t = w.things[tid]
            step = self._goto_or_act(r, f"I saw a {t.name} on/in the {r.name}. I go there to take it.")
            if step[1]:
                return step
            return f"Here is a {t.name}. I take it, then {tail}.", f"take {t.name} from {r.name}"
        order = self._search_order(otype)
        if not order:
            raise RuntimeError(f"the expert searched every receptacle and found no {otype}")
        r = order[0]
        if w.location == r.location and r.openable and r.id not in w.opened:
            return f"The {r.name} is closed. I open it to look for a {otype}.", f"open {r.name}"
        likely = ", ".join(dict.fromkeys(x.type for x in order[:4]))
        if not self.said_plan:
            self.said_plan = True
            thought = (f"To solve the task, I need to find a {otype}, take it, then {tail}. "
                       f"A {otype} is most likely in/on a {likely}. I start with the {r.name}.")
        else:
            thought = f"No {otype} so far. Next most likely places: {likely}. I check the {r.name}."
        return thought, f"go to {r.name}"

    def _treat(self, held, verb: str, tool_type: str) -> tuple[str, str]:
        w = self.world
        tools = [r for r in w.sorted_receptacles() if r.type == tool_type]
        here = [r for r in tools if r.location == w.location]
        if here:
            return (f"I am at the {here[0].name} with the {held.name}. I {verb} it.",
                    f"{verb} {held.name} with {here[0].name}")
        return (f"I have the {held.name}; now I need to {verb} it with a {tool_type}. I go to the {tools[0].name}.",
                f"go to {tools[0].name}")

    def _place(self, held) -> tuple[str, str]:
        r = self.target
        step = self._goto_or_act(r, f"I have the {held.name}. I take it to the {r.name}.")
        if step[1]:
            return step
        self.placed.add(held.id)
        rest = ""
        if self.goal.task_type == "pick_two_obj_and_place" and len(self.placed) < 2:
            rest = f" Then I need a second {self.goal.obj}."
        return f"I put the {held.name} in/on the {r.name}.{rest}", f"move {held.name} to {r.name}"

    def _use_lamp(self) -> tuple[str, str]:
        w, g = self.world, self.goal
        lamps = [t for t, r in self.seen.items() if w.things[t].type == g.toggle]
        if not lamps:
            order = self._search_order(g.toggle)
            r = order[0]
            return (f"I have the {g.obj}. Now I need to find a {g.toggle}; I check the {r.name}.",
                    f"go to {r.name}")
        lamp = w.things[sorted(lamps)[0]]
        r = w.receptacles[self.seen[lamp.id]]
        if w.location != r.location:
            return f"I have the {g.obj}. I saw a {lamp.name} on the {r.name}; I go there.", f"go to {r.name}"
        return f"I am next to the {lamp.name} with the {g.obj}. I turn it on to look at it.", f"use {lamp.name}"


def number_key(name: str) -> tuple[str, int]:
    """Sort key of a thing's name: "cabinet 10" after "cabinet 9"."""
    base, _, number = name.rpartition(" ")
    return (base, int(number)) if number.isdigit() else (name, 0)


def solve(world: World, max_steps: int = 50) -> list[tuple[str, str]] | None:
    """Play the expert from the world's initial state; its (thought, action) list, or None if it fails.

    The world is reset before and after, so callers get it back untouched.
    """
    world.reset()
    expert = HouseholdExpert(world)
    steps = []
    try:
        for _ in range(max_steps):
            thought, action = expert.act()
            steps.append((thought, action))
            world.step(action)
            if world.goal_reached():
                return steps
        return None
    except RuntimeError:
        return None
    finally:
        world.reset()
