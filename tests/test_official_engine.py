"""Behaviours of the official ALFWorld engine that our own household engine must reproduce.

Uses the hand-built game of scripts/dev/probe_official_engine.py (run that script for the full transcript).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.official

pytest.importorskip("textworld")
pytest.importorskip("alfworld")
pytest.importorskip("fast_downward")

from environments.household.official import OfficialEngine  # noqa: E402
from scripts.dev.probe_official_engine import build_probe_game  # noqa: E402


@pytest.fixture(scope="module")
def game() -> dict:
    return build_probe_game()


@pytest.fixture()
def engine(game) -> OfficialEngine:
    eng = OfficialEngine(game)
    eng.reset()
    return eng


def test_intro(game):
    intro = OfficialEngine(game).reset()
    assert intro.startswith("-= Welcome to TextWorld, ALFRED! =-\n\n")
    # Receptacles sorted by mangled id; the demangler numbers them in reverse sorted-id order.
    assert intro == (
        "-= Welcome to TextWorld, ALFRED! =-\n\n"
        "You are in the middle of a room. Looking quickly around you, you see a cabinet 3, a cabinet 2, "
        "a cabinet 1, a countertop 2, a countertop 1, a fridge 1, a microwave 1, a sidetable 1, "
        "and a sinkbasin 1.\n\nYour task is to: put some apple on countertop."
    )


def test_load_from_path(game, tmp_path):
    import json

    path = tmp_path / "game.tw-pddl"
    path.write_text(json.dumps(game))
    assert OfficialEngine(path).reset() == OfficialEngine(game).reset()


def test_admissible_at_start(engine):
    assert engine.admissible_commands() == [
        "go to cabinet 1", "go to cabinet 2", "go to cabinet 3", "go to countertop 1",
        "go to countertop 2", "go to fridge 1", "go to microwave 1", "go to sidetable 1",
        "go to sinkbasin 1", "help", "inventory", "look",
    ]  # fmt: skip


def test_look_at_start_sees_nothing(engine):
    assert engine.step("look") == (
        "You are in the middle of a room. Looking quickly around you, you see nothing.",
        0.0,
        False,
    )


UNKNOWN = [
    "xyzzy",
    "",
    "LOOK",
    "look.",
    "put apple 1 in countertop 1",
    "take apple 1",
    "x" * 5000,
    "äpfel 🍎",
]


@pytest.mark.parametrize("command", UNKNOWN)
def test_unknown_command(engine, command):
    assert engine.step(command) == ("Nothing happens.", 0.0, False)


def test_surrounding_whitespace_is_stripped(engine):
    assert engine.step("  look  ")[0] == engine.step("look")[0]


def test_goto_same_place_not_admissible(engine):
    arrive = "You arrive at countertop 1. On the countertop 1, you see nothing."
    assert engine.step("go to countertop 1")[0] == arrive
    assert "go to countertop 1" not in engine.admissible_commands()
    assert engine.step("go to countertop 1")[0] == "Nothing happens."


def test_open_take_close(engine):
    assert engine.step("go to cabinet 3")[0] == "You arrive at cabinet 3. The cabinet 3 is closed."
    opened = "You open the cabinet 3. The cabinet 3 is open. In it, you see a mug 1."
    assert engine.step("open cabinet 3")[0] == opened
    assert engine.step("take mug 1 from cabinet 3")[0] == "You pick up the mug 1 from the cabinet 3."
    assert engine.step("inventory")[0] == "You are carrying: a mug 1."
    assert engine.step("examine mug 1")[0] == "There's nothing special about mug 1."
    assert engine.step("close cabinet 3")[0] == "You close the cabinet 3."


def test_take_and_place_apple_wins(engine):
    # Objects inside a receptacle: sorted by mangled id too ("apple 2" sorts before "apple 1").
    arrive = "You arrive at sidetable 1. On the sidetable 1, you see a apple 2, a apple 1, and a desklamp 1."
    assert engine.step("go to sidetable 1") == (arrive, 0.0, False)
    take = "You pick up the apple 1 from the sidetable 1."
    assert engine.step("take apple 1 from sidetable 1") == (take, 0.0, False)
    engine.step("go to countertop 1")
    assert "move apple 1 to countertop 1" in engine.admissible_commands()
    move = "You move the apple 1 to the countertop 1."
    assert engine.step("move apple 1 to countertop 1") == (move, 1.0, True)
    # The episode keeps accepting commands after done; reward/done follow the goal state.
    assert engine.step("inventory") == ("You are not carrying anything.", 1.0, True)
    assert engine.step("take apple 1 from countertop 1")[1:] == (0.0, False)


def test_heat_clean_cool_examine(engine):
    engine.step("go to sidetable 1")
    engine.step("take apple 1 from sidetable 1")
    engine.step("go to microwave 1")
    assert engine.step("heat apple 1 with microwave 1")[0] == "You heat the apple 1 using the microwave 1."
    assert engine.step("examine apple 1")[0] == "This is a hot apple 1."
    engine.step("go to sinkbasin 1")
    assert engine.step("clean apple 1 with sinkbasin 1")[0] == "You clean the apple 1 using the sinkbasin 1."
    assert engine.step("examine apple 1")[0] == "This is a hot and clean apple 1."
    engine.step("go to fridge 1")
    assert engine.step("cool apple 1 with fridge 1")[0] == "You cool the apple 1 using the fridge 1."
    assert engine.step("examine apple 1")[0] == "This is a cool and clean apple 1."


def test_lamp_always_turns_on(engine):
    engine.step("go to sidetable 1")
    assert engine.step("use desklamp 1")[0] == "You turn on the desklamp 1."
    assert engine.step("use desklamp 1")[0] == "You turn on the desklamp 1."
    assert "examine desklamp 1" not in engine.admissible_commands()  # objects are examinable only when held
