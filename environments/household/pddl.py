"""Official ALFWorld game files (`game.tw-pddl`): export a native `World`, load one back.

A game file is JSON with the `alfred` PDDL domain, the TextWorld grammar (with the goal sentence in
place of "UNKNOWN GOAL") and a PDDL problem. The domain and grammar are the ones that ship in the
`alfworld` package (the `official` extra); the problem is ours. Loading parses the problem with a
small s-expression reader and rebuilds the same `World`, so official games play at native speed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from agentkd.errors import FileFormatError

from .world import Goal, Receptacle, Thing, World

_FLAG_FACTS = {
    "pickupable": "pickupable",
    "cleanable": "cleanable",
    "heatable": "heatable",
    "coolable": "coolable",
    "toggleable": "toggleable",
    "sliceable": "sliceable",
    "isreceptacleobject": "receptacle_object",
}
_STATE_FACTS = {"isclean": "clean", "ishot": "hot", "iscool": "cool", "ison": "on", "istoggled": "toggled",
                "issliced": "sliced"}
_GOAL_STATE = {
    "pick_clean_then_place_in_recep": "isClean",
    "pick_heat_then_place_in_recep": "isHot",
    "pick_cool_then_place_in_recep": "isCool",
}
_GOAL_AFFORDANCE = {"isClean": "cleanable", "isHot": "heatable", "isCool": "coolable"}


class GameFileError(FileFormatError):
    """A game file that is malformed or uses a feature the native engine does not support."""

    def __init__(self, source: str, problem: str):
        super().__init__(source, None, problem)
        self.source = source


def official_domain_and_grammar() -> tuple[str, str]:
    """The `alfred.pddl` domain and `alfred.twl2` grammar shipped in the `alfworld` package."""
    try:
        import alfworld  # noqa: F401  (only to locate its data folder)
    except ImportError as exc:
        raise ImportError(
            "exporting official game files needs the alfworld package: pip install -e '.[official]'"
        ) from exc
    data = Path(alfworld.__file__).parent / "data"
    return (data / "alfred.pddl").read_text(), (data / "alfred.twl2").read_text()


# ---- export -------------------------------------------------------------------------------------


def goal_pddl(goal: Goal) -> str:
    """The goal formula of ALFWorld's goal library for this task type."""
    o, r = f"{goal.obj}type", f"{goal.recep}type"
    if goal.task_type == "look_at_obj_in_light":
        return (
            "(:goal (and (exists (?ot - object ?r - receptacle ?a - agent ?l - location) (and "
            f"(objectType ?ot {goal.toggle}type) (toggleable ?ot) (isToggled ?ot) (receptacleAtLocation ?r ?l) "
            "(atLocation ?a ?l) (inReceptacle ?ot ?r))) "
            f"(exists (?o - object ?a - agent) (and (objectType ?o {o}) (holds ?a ?o)))))"
        )
    if goal.task_type == "pick_two_obj_and_place":
        return (
            "(:goal (and (exists (?r - receptacle) (exists (?o1 - object) (and "
            f"(objectType ?o1 {o}) (receptacleType ?r {r}) (inReceptacle ?o1 ?r) "
            "(exists (?o2 - object) (and (not (= ?o1 ?o2)) "
            f"(objectType ?o2 {o}) (receptacleType ?r {r}) (inReceptacle ?o2 ?r))))))))"
        )
    state = _GOAL_STATE.get(goal.task_type)
    extra = f"({_GOAL_AFFORDANCE[state]} ?o) ({state} ?o) " if state else ""
    if goal.task_type != "pick_and_place_simple" and state is None:
        raise ValueError(f"no PDDL goal for task type {goal.task_type!r}")
    return (
        "(:goal (and (exists (?r - receptacle) (exists (?o - object) (and "
        f"{extra}(objectType ?o {o}) (receptacleType ?r {r}) (inReceptacle ?o ?r))))))"
    )


def problem_pddl(world: World, name: str = "household") -> str:
    receps = sorted(world.receptacles.values(), key=lambda r: r.id)
    things = sorted(world.things.values(), key=lambda t: t.id)
    locations = sorted({world.start_location} | {r.location for r in receps})
    otypes = sorted({t.type for t in things} | {world.goal.obj} | ({world.goal.toggle} - {None}))
    rtypes = sorted({r.type for r in receps})
    objects = (
        ["agent1 - agent"]
        + [f"{t}type - otype" for t in otypes]
        + [f"{t}type - rtype" for t in rtypes]
        + [f"{t.id} - object" for t in things]
        + [f"{r.id} - receptacle" for r in receps]
        + [f"{loc} - location" for loc in locations]
    )
    init = ["(= (total-cost) 0)", f"(atLocation agent1 {world.start_location})"]
    init += [f"(receptacleType {r.id} {r.type}type)" for r in receps]
    init += [f"(receptacleAtLocation {r.id} {r.location})" for r in receps]
    init += [f"(openable {r.id})" for r in receps if r.openable]
    init += [f"(opened {rid})" for rid in sorted(world.initially_opened)]
    for t in things:
        init.append(f"(objectType {t.id} {t.type}type)")
        init += [f"({fact} {t.id})" for fact, attr in _FLAG_FACTS.items() if getattr(t, attr)]
    for fact, attr in _STATE_FACTS.items():
        init += [f"({fact} {tid})" for tid in sorted(world.initial_state.get(attr, ()))]
    for rid in sorted(world.initial_contents):
        init += [f"(inReceptacle {tid} {rid})" for tid in sorted(world.initial_contents[rid])]
    init += [f"(objectAtLocation {tid} {loc})" for tid, loc in sorted(world.initial_at_location)]
    init += [f"(canContain {rt}type {ot}type)" for rt, ot in sorted(world.can_contain)
             if rt in rtypes and ot in otypes]
    body = "\n        ".join
    return (
        f"(define (problem {name})\n    (:domain alfred)\n    (:objects\n        {body(objects)}\n    )\n"
        f"    (:init\n        {body(init)}\n    )\n    {goal_pddl(world.goal)}\n)\n"
    )


def export_game(world: World, path: str | Path | None = None, *, name: str = "household",
                walkthrough: list[str] | None = None, metadata: dict[str, Any] | None = None) -> dict:
    """Build the `game.tw-pddl` dict for `world` (and write it to `path` if given)."""
    domain, grammar = official_domain_and_grammar()
    game: dict[str, Any] = {
        "pddl_domain": domain,
        "grammar": grammar.replace("UNKNOWN GOAL", world.goal_text.rstrip(".")),
        "pddl_problem": problem_pddl(world, name=re.sub(r"[^a-z0-9_]", "_", name.lower())),
        "solvable": True,
    }
    if walkthrough is not None:
        game["walkthrough"] = walkthrough
    if metadata:
        game["agentkd"] = metadata
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(game))
    return game


# ---- import -------------------------------------------------------------------------------------


def _tokenize(text: str) -> list[str]:
    text = re.sub(r";[^\n]*", "", text)
    return re.findall(r"\(|\)|[^\s()]+", text.lower())


def _parse(tokens: list[str]) -> list:
    stack: list[list] = [[]]
    for tok in tokens:
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) == 1:
                raise ValueError("unbalanced ')'")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(tok)
    if len(stack) != 1:
        raise ValueError("unbalanced '('")
    return stack[0]


def _section(problem: list, key: str) -> list:
    for part in problem:
        if isinstance(part, list) and part and part[0] == key:
            return part[1:]
    raise ValueError(f"the problem has no {key} section")


def _typed_names(items: list) -> dict[str, str]:
    types, pending = {}, []
    it = iter(items)
    for tok in it:
        if tok == "-":
            type_ = next(it)
            types.update(dict.fromkeys(pending, type_))
            pending = []
        else:
            pending.append(tok)
    types.update(dict.fromkeys(pending, "object"))
    return types


def _atoms(goal: Any) -> list[list[str]]:
    """All atoms (lists of plain tokens) inside a goal formula."""
    if not isinstance(goal, list):
        return []
    if goal and all(isinstance(x, str) for x in goal):
        return [goal]
    return [a for part in goal for a in _atoms(part)]


def _strip_type(type_name: str) -> str:
    return type_name[: -len("type")] if type_name.endswith("type") else type_name


def _goal_from_pddl(goal: list) -> Goal:
    atoms = _atoms(goal)
    preds = {a[0] for a in atoms}
    if preds & {"issliced", "inreceptacleobject", "isreceptacleobject"}:
        raise ValueError("goals with sliced objects or movable receptacles are not supported")
    obj_types = {a[1]: _strip_type(a[2]) for a in atoms if a[0] == "objecttype" and len(a) == 3}
    recep_types = {_strip_type(a[2]) for a in atoms if a[0] == "receptacletype" and len(a) == 3}
    if "istoggled" in preds:
        toggled_vars = {a[1] for a in atoms if a[0] in ("istoggled", "toggleable")}
        toggles = [t for v, t in obj_types.items() if v in toggled_vars]
        objs = [t for v, t in obj_types.items() if v not in toggled_vars]
        if len(toggles) != 1 or len(objs) != 1:
            raise ValueError("cannot read the object and lamp types of a look_at_obj_in_light goal")
        return Goal("look_at_obj_in_light", obj=objs[0], toggle=toggles[0])
    if len(set(obj_types.values())) != 1 or len(recep_types) != 1:
        raise ValueError(f"unsupported goal: object types {sorted(set(obj_types.values()))}, "
                         f"receptacle types {sorted(recep_types)}")
    obj, recep = next(iter(obj_types.values())), next(iter(recep_types))
    if "=" in preds:
        task_type = "pick_two_obj_and_place"
    else:
        state = [t for t, s in _GOAL_STATE.items() if s.lower() in preds]
        task_type = state[0] if state else "pick_and_place_simple"
    return Goal(task_type, obj=obj, recep=recep)


def goal_sentence(grammar: str) -> str:
    """The goal of a game's grammar ("Your task is to: ..."), or ValueError when it has none."""
    match = re.search(r'"rhs":\s*"Your task is to: (.*?)"', grammar)
    if not match or match.group(1) == "UNKNOWN GOAL.":
        raise ValueError("the grammar carries no goal sentence ('Your task is to: ...')")
    return match.group(1)


def load_game(game: str | Path | dict) -> World:
    """Read an official `game.tw-pddl` (path or parsed dict) into a native `World`."""
    source = str(game) if not isinstance(game, dict) else "<game dict>"
    try:
        data = json.loads(Path(game).read_text()) if not isinstance(game, dict) else game
    except (OSError, UnicodeDecodeError) as exc:
        raise GameFileError(source, f"cannot read the file ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise GameFileError(source, f"not a JSON game file ({exc})") from exc
    if not isinstance(data, dict):
        raise GameFileError(source, "not a game file: expected a JSON object")
    missing = [k for k in ("pddl_domain", "grammar", "pddl_problem") if k not in data]
    if missing:
        raise GameFileError(source, f"not a tw-pddl game file: missing {', '.join(missing)}")
    if "(domain alfred)" not in data["pddl_domain"].lower().replace("  ", " "):
        raise GameFileError(source, "unsupported domain: only ALFWorld's 'alfred' domain is supported")
    try:
        return _world_from_problem(data["pddl_problem"], goal_sentence(data["grammar"]))
    except (ValueError, KeyError, StopIteration, IndexError) as exc:
        raise GameFileError(source, f"malformed or unsupported PDDL problem: {exc}") from exc


def _world_from_problem(problem_text: str, goal_text: str) -> World:
    parsed = _parse(_tokenize(problem_text))
    if len(parsed) != 1 or not parsed[0] or parsed[0][0] != "define":
        raise ValueError("expected a single (define (problem ...) ...) form")
    problem = parsed[0]
    types = _typed_names(_section(problem, ":objects"))
    facts = [f for f in _section(problem, ":init") if isinstance(f, list) and f and f[0] != "="]
    goal = _goal_from_pddl(_section(problem, ":goal"))

    by_pred: dict[str, list[list[str]]] = {}
    for f in facts:
        by_pred.setdefault(f[0], []).append(f[1:])
    location_of = {r: loc for r, loc in by_pred.get("receptacleatlocation", [])}
    recep_type = {r: _strip_type(t) for r, t in by_pred.get("receptacletype", [])}
    openable = {a[0] for a in by_pred.get("openable", [])}
    receptacles = {
        rid: Receptacle(rid, recep_type.get(rid, rid), location_of[rid], rid in openable)
        for rid in sorted(location_of)
    }
    in_facts = {v for f in facts for v in f[1:]}
    object_ids = sorted(i for i, t in types.items() if t == "object" and i in in_facts)
    obj_type = {o: _strip_type(t) for o, t in by_pred.get("objecttype", [])}
    flags = {attr: {a[0] for a in by_pred.get(fact, [])} for fact, attr in _FLAG_FACTS.items()}
    things = {
        oid: Thing(oid, obj_type.get(oid, oid), **{attr: oid in ids for attr, ids in flags.items()})
        for oid in object_ids
    }
    contents: dict[str, list[str]] = {}
    for oid, rid in by_pred.get("inreceptacle", []):
        contents.setdefault(rid, []).append(oid)
    starts = [a[1] for a in by_pred.get("atlocation", []) if a[0] == "agent1"]
    if len(starts) != 1:
        raise ValueError("expected exactly one (atLocation agent1 ...) fact")
    return World(
        receptacles=receptacles,
        things=things,
        start_location=starts[0],
        initial_contents=contents,
        can_contain={(_strip_type(r), _strip_type(o)) for r, o in by_pred.get("cancontain", [])},
        goal=goal,
        goal_text=goal_text if goal_text.endswith(".") else goal_text + ".",
        initial_at_location={(o, loc) for o, loc in by_pred.get("objectatlocation", [])},
        initially_opened={a[0] for a in by_pred.get("opened", [])},
        initial_state={attr: {a[0] for a in by_pred.get(fact, [])} for fact, attr in _STATE_FACTS.items()},
    )
