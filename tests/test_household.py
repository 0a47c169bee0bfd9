"""The native household engine: splits, text rules, expert, bad input, game files."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from environments.household import (
    SPLIT_SIZES,
    TASK_TYPES,
    GameFileError,
    HouseholdEnv,
    get_task,
    load_game,
    load_split,
    world_for_task,
)
from environments.household.generator import UNSEEN_FLOORPLANS, layouts
from environments.household.pddl import problem_pddl
from environments.household.world import HELP_TEXT, NOTHING_HAPPENS, demangle_names, display_list


def play_expert(env: HouseholdEnv, task) -> tuple[float, int, list]:
    env.reset(task)
    done, reward, steps = False, 0.0, []
    while not done:
        thought, action = env.expert_action()
        _, reward, done, _ = env.step(action)
        steps.append((thought, action))
    return reward, env.steps, steps


# ---- text rules ---------------------------------------------------------------------------------


def test_demangler_numbers_in_reverse_sorted_id_order_and_names_basins():
    ids = ["cabinet_bar__plus_01", "cabinet_bar__minus_02", "cabinet_bar__plus_00",
           "sink_bar__plus_01_bar_sinkbasin", "agent1"]
    names = demangle_names(ids)
    # sorted: cabinet_bar__minus_02 < cabinet_bar__plus_00 < cabinet_bar__plus_01
    assert names["cabinet_bar__minus_02"] == "cabinet 3"
    assert names["cabinet_bar__plus_00"] == "cabinet 2"
    assert names["cabinet_bar__plus_01"] == "cabinet 1"
    assert names["sink_bar__plus_01_bar_sinkbasin"] == "sinkbasin 1"
    assert names["agent1"] == "agent1 "


def test_display_list_matches_textworld():
    assert display_list([]) == "nothing"
    assert display_list(["a x"]) == "a x"
    assert display_list(["a x", "a y"]) == "a x, and a y"
    assert display_list(["a x", "a y", "a z"]) == "a x, a y, and a z"


# ---- splits -------------------------------------------------------------------------------------


def test_splits_have_alfworld_sizes_all_task_types_and_are_deterministic():
    for name, size in SPLIT_SIZES.items():
        tasks = load_split(name)
        assert len(tasks) == size
        assert set(Counter(t.task_type for t in tasks)) == set(TASK_TYPES)
        assert len({t.task_id for t in tasks}) == size
    assert SPLIT_SIZES["train"] >= 3500 and SPLIT_SIZES["valid_seen"] == 140 and SPLIT_SIZES["valid_unseen"] == 134
    first = [t.model_dump() for t in load_split("valid_seen")]
    assert first == [t.model_dump() for t in load_split("valid_seen")]
    # A task rebuilds into the same household every time.
    task = load_split("valid_unseen")[7]
    assert world_for_task(task).intro() == world_for_task(task).intro()


def test_unseen_layouts_never_occur_in_train():
    train_plans = {t.params["layout"].split("-v")[0] for t in load_split("train")}
    seen_plans = {t.params["layout"].split("-v")[0] for t in load_split("valid_seen")}
    unseen_plans = {t.params["layout"].split("-v")[0] for t in load_split("valid_unseen")}
    assert not train_plans & UNSEEN_FLOORPLANS
    assert unseen_plans <= UNSEEN_FLOORPLANS
    train_layouts = {t.params["layout"] for t in load_split("train")}
    assert {t.params["layout"] for t in load_split("valid_seen")} <= {lay.layout_id for lay in layouts(True)}
    assert seen_plans <= train_plans
    assert len(train_layouts) > 100


def test_unknown_split_and_index_errors_list_what_exists():
    with pytest.raises(ValueError, match="valid_unseen"):
        load_split("test_seen")
    with pytest.raises(IndexError, match="0..133"):
        get_task("valid_unseen", 134)


# ---- expert -------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["valid_seen", "valid_unseen"])
def test_expert_solves_every_validation_task_within_the_step_limit(split):
    env = HouseholdEnv()
    results: dict[str, list[bool]] = {}
    for task in load_split(split):
        reward, steps, trace = play_expert(env, task)
        results.setdefault(task.task_type, []).append(reward == 1.0)
        assert steps <= 50
        assert all(thought for thought, _ in trace), "every expert step carries a thought"
    assert {k: all(v) for k, v in results.items()} == dict.fromkeys(TASK_TYPES, True)


def test_expert_thoughts_say_what_it_looks_for():
    env = HouseholdEnv()
    task = next(t for t in load_split("valid_unseen") if t.task_type == "pick_heat_then_place_in_recep")
    _, _, trace = play_expert(env, task)
    obj = task.params["obj"]
    assert f"find a {obj}" in trace[0][0]
    assert any(a.startswith("heat ") for _, a in trace)


# ---- episodes and bad input ---------------------------------------------------------------------


def test_bad_actions_give_nothing_happens_and_change_nothing():
    env = HouseholdEnv()
    task = load_split("valid_unseen")[0]
    env.reset(task)
    before = env.admissible_actions()
    for bad in ["", "   ", "dance", "x" * 100_000, "prends la pomme \u00e0 la main", "\U0001f600", None, 42,
                "LOOK", "go to"]:
        obs, reward, done, info = env.step(bad)
        assert obs == NOTHING_HAPPENS and reward == 0.0 and not done and not info["admissible"]
    assert env.admissible_actions() == before


def test_help_look_inventory_and_put_alias():
    env = HouseholdEnv()
    task = next(t for t in load_split("valid_unseen") if t.task_type == "pick_and_place_simple")
    env.reset(task)
    assert env.step("help")[0] == HELP_TEXT
    assert env.step("inventory")[0] == "You are not carrying anything."
    assert env.step("look")[0].startswith("You are in the middle of a room.")
    world = env.world
    # Walk to a receptacle holding something pickable, take it, and put it back with the 0.3 wording.
    for r in world.sorted_receptacles():
        if world.contents[r.id] and not r.openable:
            thing = world.things[sorted(world.contents[r.id])[0]]
            if thing.pickupable and (r.type, thing.type) in world.can_contain:
                break
    env.step(f"go to {r.name}")
    assert env.step(f"take {thing.name} from {r.name}")[0] == f"You pick up the {thing.name} from the {r.name}."
    assert env.step("inventory")[0] == f"You are carrying: a {thing.name}."
    obs, *_ = env.step(f"put {thing.name} in/on {r.name}")
    assert obs == f"You move the {thing.name} to the {r.name}."


def test_episode_ends_at_the_step_limit_and_refuses_more_steps():
    env = HouseholdEnv(max_steps=5)
    env.reset(load_split("valid_seen")[0])
    for _ in range(5):
        _, reward, done, info = env.step("look")
    assert done and reward == 0.0 and info["steps"] == 5
    with pytest.raises(RuntimeError, match="reset"):
        env.step("look")
    with pytest.raises(RuntimeError, match="reset"):
        HouseholdEnv().step("look")
    with pytest.raises(ValueError, match="native, official"):
        HouseholdEnv(backend="thor")


# ---- game files ---------------------------------------------------------------------------------


def _native_game_dict(task) -> dict:
    """A game dict built without the alfworld package: a stand-in domain text suffices for loading."""
    world = world_for_task(task)
    return {"pddl_domain": "(define (domain alfred))",
            "grammar": json.dumps({"task": [{"rhs": f"Your task is to: {world.goal_text[:-1]}."}]}),
            "pddl_problem": problem_pddl(world)}


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_game_file_round_trip_plays_identically(tmp_path, task_type):
    task = next(t for t in load_split("valid_seen") if t.task_type == task_type)
    path = tmp_path / "game.tw-pddl"
    path.write_text(json.dumps(_native_game_dict(task)))
    original, loaded = world_for_task(task), load_game(path)
    assert loaded.goal == original.goal
    assert loaded.intro() == original.intro()
    from environments.household import solve

    for _, action in solve(original):
        assert loaded.admissible_commands() == original.admissible_commands()
        assert loaded.step(action) == original.step(action)
    assert loaded.goal_reached() and original.goal_reached()


def test_malformed_game_files_name_the_file_and_the_problem(tmp_path):
    task = load_split("valid_seen")[0]
    good = _native_game_dict(task)
    cases = {
        "notjson.tw-pddl": "{ this is not json",
        "missing.tw-pddl": json.dumps({"pddl_domain": good["pddl_domain"]}),
        "domain.tw-pddl": json.dumps({**good, "pddl_domain": "(define (domain blocksworld))"}),
        "parens.tw-pddl": json.dumps({**good, "pddl_problem": good["pddl_problem"] + ")"}),
        "nogoal.tw-pddl": json.dumps({**good, "grammar": "{}"}),
        "slice.tw-pddl": json.dumps({**good, "pddl_problem": good["pddl_problem"].replace(
            "(inReceptacle ?o ?r)", "(isSliced ?o) (inReceptacle ?o ?r)", 1)}),
    }
    expected = {"notjson": "not a JSON", "missing": "missing grammar, pddl_problem", "domain": "unsupported domain",
                "parens": "unbalanced", "nogoal": "goal sentence", "slice": "not supported"}
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(GameFileError) as err:
            load_game(path)
        assert str(path) in str(err.value)
        assert expected[name.split(".")[0]] in str(err.value)
    with pytest.raises(GameFileError, match="cannot read"):
        load_game(tmp_path / "absent.tw-pddl")


def test_expert_recovers_after_someone_else_acted():
    env = HouseholdEnv()
    task = next(t for t in load_split("valid_seen") if t.task_type == "pick_and_place_simple")
    env.reset(task)
    world = env.world
    # Pick up something the task does not need, then hand over to the expert.
    for r in world.sorted_receptacles():
        junk = [world.things[t] for t in sorted(world.contents[r.id])
                if world.things[t].type != task.params["obj"] and world.things[t].pickupable]
        if junk and not r.openable:
            break
    env.step(f"go to {r.name}")
    env.step(f"take {junk[0].name} from {r.name}")
    done, reward = False, 0.0
    while not done:
        _, action = env.expert_action()
        _, reward, done, _ = env.step(action)
    assert reward == 1.0
