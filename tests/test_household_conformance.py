"""Native vs official ALFWorld engine, game by game (needs the `official` extra; CI installs it)."""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from multiprocessing import get_context

import pytest

pytest.importorskip("textworld")
pytest.importorskip("alfworld")
pytest.importorskip("fast_downward")

from environments.household import TASK_TYPES, HouseholdEnv, load_split  # noqa: E402
from environments.household.conformance import (  # noqa: E402
    check_task,
    conformance_games,
    expert_wins_official,
)

pytestmark = pytest.mark.official
WORKERS = max(1, min(2, os.cpu_count() or 1))


def _check(task):
    r = check_task(task)
    return task.task_type, r.steps_compared, r.expert_won_native, r.expert_won_official, r.mismatches


def test_native_engine_matches_official_engine_on_54_games(tmp_path):
    games = conformance_games()
    assert len(games) >= 50 and {t.task_type for t in games} == set(TASK_TYPES)
    with get_context("fork").Pool(WORKERS) as pool:
        results = pool.map(_check, games)
    mismatches = [m for *_, mm in results for m in mm]
    summary = {
        "games": len(results),
        "steps_compared": sum(r[1] for r in results),
        "by_task_type": dict(Counter(r[0] for r in results)),
        "expert_won_native": sum(r[2] for r in results),
        "expert_won_official": sum(r[3] for r in results),
        "mismatches": len(mismatches),
    }
    print("conformance:", json.dumps(summary))
    assert not mismatches, "\n".join(mismatches[:5])
    assert summary["expert_won_native"] == summary["expert_won_official"] == len(games)


def test_official_backend_plays_through_the_env_protocol_with_put_alias():
    task = next(t for t in load_split("valid_unseen") if t.task_type == "pick_and_place_simple")
    native, official = HouseholdEnv(), HouseholdEnv(backend="official")
    assert native.reset(task) == official.reset(task)
    with pytest.raises(TypeError, match="cannot be copied"):  # its state is in the engine's process
        copy.deepcopy(official)
    assert native.admissible_actions() == official.admissible_actions()
    done = False
    while not done:
        _, action = native.expert_action()
        action = action.replace("move ", "put ").replace(" to ", " in ") if action.startswith("move ") else action
        n, o = native.step(action), official.step(action)
        assert n[:3] == o[:3]
        done = n[2]
    assert n[1] == o[1] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("split", ["valid_seen", "valid_unseen"])
def test_expert_solves_every_exported_validation_game_in_the_official_engine(split):
    tasks = load_split(split)
    with get_context("fork").Pool(WORKERS) as pool:
        wins = pool.map(expert_wins_official, tasks)
    by_type = Counter(t.task_type for t, won in zip(tasks, wins, strict=True) if won)
    print(f"official expert wins on {split}:", dict(by_type), f"{sum(wins)}/{len(tasks)}")
    assert all(wins)


def _probe_games():
    from scripts.dev.probe_official_engine import OBJECTS, RECEPTACLES, SIDE, TOMATO, TOP_A, TOP_B, build_probe_game

    here = RECEPTACLES[SIDE][1]  # both countertops share the side table's location: "You are facing the ..."
    shared = dict(RECEPTACLES, **{TOP_A: ("CounterTop", here, False), TOP_B: ("CounterTop", here, False)})
    tomato = dict(OBJECTS, **{TOMATO: ("Tomato", OBJECTS[TOMATO][1], here, OBJECTS[TOMATO][3])})
    return {"probe": build_probe_game(), "shared-location": build_probe_game(receptacles=shared, objects=tomato)}


@pytest.mark.parametrize("name", ["probe", "shared-location"])
def test_hand_written_alfred_game_files_play_identically_natively(name):
    """Game files written the way ALFRED writes them (mixed-case ids, bare class objects, objectAtLocation
    facts, receptacles sharing a location) load into the native engine and play exactly as officially."""
    import random

    from environments.household import load_game
    from environments.household.conformance import Report, play_side_by_side
    from environments.household.official import OfficialEngine

    game = _probe_games()[name]
    world, engine = load_game(game), OfficialEngine(game)
    report = Report(name)
    play_side_by_side(report, world, engine, [None] * 120, random.Random(name), "walk")
    assert report.steps_compared == 120
    assert not report.mismatches, "\n".join(report.mismatches[:5])
