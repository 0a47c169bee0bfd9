"""Probe the official ALFWorld engine (TextWorld PddlEnv + AlfredDemangler) on a hand-built game.

Prints a transcript: every command with its feedback, reward, done and the admissible list,
for a scripted session designed to pin down the engine's exact texts and orderings.

    PYTHONPATH=. .venv/bin/python scripts/dev/probe_official_engine.py              # transcript + timing
    PYTHONPATH=. .venv/bin/python scripts/dev/probe_official_engine.py --no-timing --out t.txt
    PYTHONPATH=. .venv/bin/python scripts/dev/probe_official_engine.py --hashseed-check

``build_probe_game()`` is also used by tests/test_official_engine.py.
"""

from __future__ import annotations

import argparse
import difflib
import os
import random
import statistics
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from environments.household.official import OfficialEngine  # noqa: E402

GOAL = "put some apple on countertop"  # the grammar adds the final "."

# ALFRED ids as the simulator writes them; mangled like PlannedGameState.fix_pddl_str_chars.
# Chosen so that declaration order, location-id order and receptacle-id order all differ.
CAB_A = "Cabinet|+00.10|+01.00|-01.50"  # sorts last among cabinets   -> expected "cabinet 1"
CAB_B = "Cabinet|-00.90|+01.00|-01.50"  # sorts first                 -> expected "cabinet 3"
CAB_C = "Cabinet|-01.20|+02.00|+00.30"  # sorts in the middle         -> expected "cabinet 2"
TOP_A = "CounterTop|+00.69|+00.95|-02.48"  # -> "countertop 1"
TOP_B = "CounterTop|-01.87|+00.95|-01.21"  # -> "countertop 2"
FRIDGE = "Fridge|-02.10|+00.00|+01.07"
MICRO = "Microwave|-01.32|+01.52|-01.20"
SINK = "Sink|-00.11|+00.89|-02.01|SinkBasin"
SIDE = "SideTable|+03.00|+00.70|+01.50"
APPLE_P = "Apple|+00.47|+01.10|-00.32"  # declared first, sorts last  -> expected "apple 1"
APPLE_M = "Apple|-00.20|+01.10|+00.50"  # declared second, sorts first -> expected "apple 2"
MUG = "Mug|+01.50|+00.90|-01.20"
LAMP = "DeskLamp|-02.10|+00.80|+01.00"
TOMATO = "Tomato|-02.00|+00.40|+01.10"

START = "loc|3|3|0|30"  # the agent's start: no receptacle there
RECEPTACLES = {  # id: (type, location, openable); each receptacle its own location
    CAB_A: ("Cabinet", "loc|2|-1|2|30", True),
    CAB_B: ("Cabinet", "loc|-5|-1|2|30", True),
    CAB_C: ("Cabinet", "loc|-2|3|1|45", True),
    TOP_A: ("CounterTop", "loc|1|-4|2|30", False),
    TOP_B: ("CounterTop", "loc|-6|-4|3|45", False),
    FRIDGE: ("Fridge", "loc|-7|4|3|30", True),
    MICRO: ("Microwave", "loc|-4|-2|2|0", True),
    SINK: ("SinkBasin", "loc|0|-6|2|60", False),
    SIDE: ("SideTable", "loc|9|5|0|45", False),
}
FRUIT = ("pickupable", "cleanable", "heatable", "coolable", "sliceable")
OBJECTS = {  # id: (type, receptacle, objectAtLocation, properties)
    APPLE_P: ("Apple", SIDE, "loc|9|5|0|45", FRUIT),
    APPLE_M: ("Apple", SIDE, "loc|9|5|0|45", FRUIT),
    MUG: ("Mug", CAB_B, "loc|-5|-1|2|30", ("pickupable", "cleanable", "heatable", "coolable")),
    LAMP: ("DeskLamp", SIDE, "loc|9|5|0|45", ("toggleable",)),
    # ALFRED's objectAtLocation is the object's nearest point, which need not be its receptacle's:
    # the tomato is in the fridge but "at" countertop 1's location (tests look's "Next to it").
    TOMATO: ("Tomato", FRIDGE, "loc|1|-4|2|30", FRUIT),
}
CAN_CONTAIN = {  # from alfworld.gen.constants.VAL_RECEPTACLE_OBJECTS, restricted to our types
    "Cabinet": ("Mug",),
    "CounterTop": ("Apple", "Mug", "Tomato"),
    "Fridge": ("Apple", "Mug", "Tomato"),
    "Microwave": ("Apple", "Mug", "Tomato"),
    "SinkBasin": ("Apple", "Mug", "Tomato"),
    "SideTable": ("Apple", "Mug", "Tomato"),
}
OTYPES = ("Apple", "Mug", "DeskLamp", "Tomato", "Knife", "ButterKnife")
RTYPES = ("Cabinet", "CounterTop", "Fridge", "Microwave", "SinkBasin", "SideTable")

GOAL_PDDL = """
        (:goal
            (and
                (exists (?r # receptacle)
                    (exists (?o # object)
                        (and
                            (inReceptacle ?o ?r)
                            (objectType ?o AppleType)
                            (receptacleType ?r CounterTopType)
                        )
                    )
                )
            )
        )
    )
"""


def mangle(text: str) -> str:
    """ALFRED id -> PDDL name, as PlannedGameState.fix_pddl_str_chars ('#' becomes '-')."""
    table = {"-": "_minus_", "#": "-", "|": "_bar_", "+": "_plus_", ".": "_dot_", ",": "_comma_"}
    return "".join(table.get(c, c) for c in text)


def _alfworld_data(name: str) -> str:
    return resources.files("alfworld").joinpath("data", name).read_text(encoding="utf-8")


def build_problem(receptacles=None, objects=None, start=START) -> str:
    receptacles = RECEPTACLES if receptacles is None else receptacles
    objects = OBJECTS if objects is None else objects
    locations = sorted({loc for _, loc, _ in receptacles.values()} | {start})
    decl = ["agent1 # agent"]
    decl += [f"{t} # object" for t in OTYPES]  # ALFRED also declares bare class names
    decl += [f"{t}Type # otype" for t in OTYPES] + [f"{t}Type # rtype" for t in RTYPES]
    decl += [f"{o} # object" for o in objects] + [f"{r} # receptacle" for r in receptacles]
    decl += [f"{loc} # location" for loc in locations]
    init = [f"(receptacleType {r} {t}Type)" for r, (t, _, _) in receptacles.items()]
    init += [f"(objectType {o} {t}Type)" for o, (t, *_) in objects.items()]
    init += [f"(openable {r})" for r, (_, _, op) in receptacles.items() if op]
    init.append(f"(atLocation agent1 {start})")
    init += [f"({p} {o})" for o, (*_, props) in objects.items() for p in props]
    init += [f"(inReceptacle {o} {r})" for o, (_, r, _, _) in objects.items()]
    init += [f"(receptacleAtLocation {r} {loc})" for r, (_, loc, _) in sorted(receptacles.items())]
    init += [f"(objectAtLocation {o} {loc})" for o, (_, _, loc, _) in objects.items()]
    init += [f"(canContain {rt}Type {ot}Type)" for rt, ots in CAN_CONTAIN.items() for ot in ots]
    text = (
        "\n(define (problem plan_probe)\n    (:domain alfred)\n    (:objects\n        "
        + "\n        ".join(decl)
        + "\n        )\n\n    (:init\n        "
        + "\n        ".join(init)
        + "\n        )\n\n"
        + GOAL_PDDL
    )
    return mangle(text)


def build_probe_game(goal: str = GOAL, receptacles=None, objects=None) -> dict:
    """A valid game.tw-pddl dict (alfred domain + grammar from the alfworld package)."""
    return {
        "pddl_domain": _alfworld_data("alfred.pddl"),
        "grammar": _alfworld_data("alfred.twl2").replace("UNKNOWN GOAL", goal),
        "pddl_problem": build_problem(receptacles, objects),
        "solvable": True,
    }


def build_big_game() -> dict:
    """A kitchen-sized variant (about 40 receptacles, 30 objects) for timing only."""
    receptacles = dict(RECEPTACLES)
    objects = dict(OBJECTS)
    for i in range(30):
        rid = f"Cabinet|+{i // 10:02d}.{i % 10}0|+03.00|-0{i % 7}.25"
        receptacles[rid] = ("Cabinet", f"loc|{i}|{-i}|{i % 4}|30", True)
    for i in range(25):
        oid = f"Mug|-0{i % 9}.{i:02d}|+00.90|+01.{i:02d}"
        cab = sorted(receptacles)[i % 30]
        objects[oid] = ("Mug", cab, receptacles[cab][1], ("pickupable", "cleanable", "heatable", "coolable"))
    return build_probe_game(receptacles=receptacles, objects=objects)


SCRIPT = [
    "look",
    "inventory",
    "help",
    "examine countertop 1",  # not at it
    "go to countertop 1",
    "go to countertop 1",  # again, while there
    "look",
    "examine countertop 1",
    "go to cabinet 3",
    "examine cabinet 3",  # closed
    "take mug 1 from cabinet 3",  # closed: not admissible
    "open cabinet 3",
    "open cabinet 3",  # already open
    "examine cabinet 3",  # open
    "take mug 1 from cabinet 3",
    "inventory",
    "examine mug 1",
    "close cabinet 3",
    "examine cabinet 3",
    "move mug 1 to cabinet 3",  # closed: not admissible
    "open cabinet 3",
    "move mug 1 to cabinet 3",
    "close cabinet 3",
    "go to cabinet 2",
    "open cabinet 2",  # empty open cabinet
    "go to sidetable 1",
    "look",
    "examine sidetable 1",
    "examine desklamp 1",
    "take desklamp 1 from sidetable 1",
    "use desklamp 1",
    "examine desklamp 1",
    "use desklamp 1",
    "examine desklamp 1",
    "take apple 1 from sidetable 1",
    "take apple 2 from sidetable 1",  # hands full
    "examine apple 1",
    "examine apple 2",  # on the sidetable, at it
    "inventory",
    "go to cabinet 2",  # open, but no (canContain CabinetType AppleType)
    "move apple 1 to cabinet 2",
    "go to microwave 1",
    "examine microwave 1",
    "heat apple 1 with microwave 1",
    "examine apple 1",
    "go to sinkbasin 1",
    "examine sinkbasin 1",
    "clean apple 1 with sinkbasin 1",
    "examine apple 1",
    "go to fridge 1",
    "cool apple 1 with fridge 1",
    "examine apple 1",
    "move apple 1 to fridge 1",  # closed
    "open fridge 1",
    "take tomato 1 from fridge 1",  # hands full
    "move apple 1 to fridge 1",
    "take tomato 1 from fridge 1",
    "cool tomato 1 with fridge 1",
    "examine tomato 1",
    "move tomato 1 to fridge 1",
    "close fridge 1",
    "go to sidetable 1",
    "take apple 2 from sidetable 1",
    "go to sinkbasin 1",
    "clean apple 2 with sinkbasin 1",
    "examine apple 2",
    "go to countertop 1",
    "look",  # the tomato's objectAtLocation is this location
    "put apple 2 in countertop 1",  # ALFWorld 0.3 dialect
    "put apple 2 on countertop 1",
    "drop apple 2",
    "take apple 2",
    "xyzzy",
    "",
    "  look  ",
    "LOOK",
    "Look",
    "look.",
    "go to  countertop 1",
    "x" * 5000,
    "examine äpfel 🍎",
    "move apple 2 to countertop 1",  # wins
    "look",  # after done
    "inventory",
    "take apple 2 from countertop 1",  # undo the goal after done
    "move apple 2 to countertop 1",  # win again
]


def _short(cmd: str) -> str:
    return repr(cmd) if len(cmd) <= 80 else f"{cmd[:20]!r}...(len={len(cmd)})"


def transcript(out) -> None:
    game = build_probe_game()
    engine = OfficialEngine(game, with_facts=True)
    intro = engine.reset()
    print("== (a) intro", file=out)
    print(repr(intro), file=out)
    print("admissible:", engine.admissible_commands(), file=out)
    print("facts:", engine.facts(), file=out)
    print("\n== scripted session", file=out)
    for i, cmd in enumerate(SCRIPT):
        before = engine.admissible_commands()
        fb, reward, done = engine.step(cmd)
        print(f"\n[{i}] > {_short(cmd)}  (admissible before: {cmd.strip() in before})", file=out)
        print(f"    feedback: {fb!r}", file=out)
        print(f"    reward={reward} done={done}", file=out)
        print(f"    admissible: {engine.admissible_commands()}", file=out)
    print("\n== reset again", file=out)
    print("intro identical:", engine.reset() == intro, file=out)

    # A seeded random walk over admissible commands, to widen the hash-seed diff.
    print("\n== random walk (seed 0)", file=out)
    rng = random.Random(0)
    for i in range(150):
        cmd = rng.choice(engine.admissible_commands())
        fb, reward, done = engine.step(cmd)
        n_adm = len(engine.admissible_commands())
        print(f"[{i}] {cmd!r} -> {fb!r} r={reward} d={done} n_adm={n_adm}", file=out)

    # Receptacles sharing one location (common in real ALFRED data: shelves, stove burners, drawers).
    print("\n== shared location: both countertops moved to sidetable 1's location", file=out)
    here = RECEPTACLES[SIDE][1]
    recs = dict(RECEPTACLES, **{TOP_A: ("CounterTop", here, False), TOP_B: ("CounterTop", here, False)})
    objs = dict(OBJECTS, **{TOMATO: ("Tomato", FRIDGE, RECEPTACLES[FRIDGE][1], OBJECTS[TOMATO][3])})
    shared = OfficialEngine(build_probe_game(receptacles=recs, objects=objs))
    print(repr(shared.reset()), file=out)
    for cmd in [
        "go to sidetable 1",
        "look",
        "go to countertop 2",  # same location as sidetable 1
        "examine countertop 2",
        "take apple 1 from sidetable 1",
        "look",
        "move apple 1 to countertop 2",  # wins
        "look",  # not_inreceptacle(apple 1, sidetable 1) + objectatlocation(apple 1, here)
        "take apple 1 from countertop 2",
        "move apple 1 to countertop 1",
        "look",  # two not_inreceptacle facts: listed twice
        "take apple 1 from countertop 1",
        "move apple 1 to sidetable 1",
        "look",
    ]:
        fb, reward, done = shared.step(cmd)
        print(f"> {cmd!r}\n    {fb!r} reward={reward} done={done}", file=out)
        print(f"    admissible: {shared.admissible_commands()}", file=out)

    # The agent starting at a receptacle's location.
    print("\n== agent starts at sidetable 1's location", file=out)
    game = build_probe_game()
    game["pddl_problem"] = game["pddl_problem"].replace(
        mangle(f"(atLocation agent1 {START})"), mangle(f"(atLocation agent1 {RECEPTACLES[SIDE][1]})")
    )
    there = OfficialEngine(game)
    print(repr(there.reset()), file=out)
    print(f"    admissible: {there.admissible_commands()}", file=out)

    # The goal already true at reset: reward/done only come with the first step.
    print("\n== goal already true at reset (apple 2 starts on countertop 2)", file=out)
    objs = dict(OBJECTS)
    objs[APPLE_M] = ("Apple", TOP_B, RECEPTACLES[TOP_B][1], OBJECTS[APPLE_M][3])
    won = OfficialEngine(build_probe_game(objects=objs))
    print(repr(won.reset()), "won at reset:", won.won, file=out)
    for cmd in ["xyzzy", "look"]:
        fb, reward, done = won.step(cmd)
        print(f"> {cmd!r}\n    {fb!r} reward={reward} done={done}", file=out)


def timing(out, n_steps: int = 200, n_loads: int = 5) -> None:
    for label, game in (("probe game", build_probe_game()), ("big game", build_big_game())):
        loads = []
        for _ in range(n_loads):
            t0 = time.perf_counter()
            engine = OfficialEngine(game)
            engine.reset()
            loads.append(time.perf_counter() - t0)
        rng = random.Random(1)
        steps, n_adm = [], []
        for _ in range(n_steps):
            cmd = rng.choice(engine.admissible_commands())
            t0 = time.perf_counter()
            engine.step(cmd)
            steps.append(time.perf_counter() - t0)
            n_adm.append(len(engine.admissible_commands()))
        print(
            f"(f) {label}: load+reset mean {1000 * statistics.mean(loads):.1f} ms "
            f"(min {1000 * min(loads):.1f}); step mean {1000 * statistics.mean(steps):.2f} ms, "
            f"median {1000 * statistics.median(steps):.2f} ms, max {1000 * max(steps):.2f} ms "
            f"over {n_steps} random admissible commands (mean {statistics.mean(n_adm):.1f} admissible)",
            file=out,
        )


def hashseed_check() -> int:
    texts = []
    for seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run(
            [sys.executable, __file__, "--no-timing"], env=env, capture_output=True, text=True, check=True
        )
        texts.append(proc.stdout)
    a, b = texts[0].splitlines(), texts[1].splitlines()
    diff = list(difflib.unified_diff(a, b, "PYTHONHASHSEED=0", "PYTHONHASHSEED=12345", lineterm=""))
    print(f"(g) transcript lines: {len(texts[0].splitlines())}; differing lines: {len(diff)}")
    print("\n".join(diff[:80]))
    return 1 if diff else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--hashseed-check", action="store_true", help="run twice, diff")
    ap.add_argument("--out", help="write the transcript here instead of stdout")
    args = ap.parse_args()
    if args.hashseed_check:
        return hashseed_check()
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    try:
        transcript(out)
        if not args.no_timing:
            timing(out)
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
