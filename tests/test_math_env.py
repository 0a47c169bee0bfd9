"""The math environment: splits, gold answers, answer checking and the scripted code expert."""

from __future__ import annotations

import random
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest

from agentkd.schema import Task
from environments.math import (
    HELD_OUT,
    SPLIT_SIZES,
    TASK_TYPES,
    TEMPLATES,
    ExpertError,
    build_task,
    check_answer,
    expert_step,
    get_task,
    intro,
    load_split,
    parse_number,
    run_expert_offline,
    score,
)
from environments.math.expert import read_result

# ---- gold answers, recomputed independently of the templates' own solvers -----------------------


def _digit_sum(x: int) -> int:
    total = 0
    while x:
        x, digit = divmod(x, 10)
        total += digit
    return total


def _ceil(a: int, b: int) -> int:
    q, r = divmod(a, b)
    return q + (r > 0)


def _fib_like(x1: int, x2: int, n: int) -> int:
    seq = [x1, x2]
    while len(seq) < n:
        seq.append(seq[-1] + seq[-2])
    return seq[n - 1]


D = Decimal  # high-precision decimals below; floats never enter the recomputation

RECOMPUTE = {
    "product_minus": lambda n: n["a"] * n["b"] - n["c"],
    "power_mod": lambda n: n["base"] ** n["exp"] % n["mod"],
    "remainder": lambda n: n["n"] - n["n"] // n["d"] * n["d"],
    "quotient": lambda n: (n["n"] - n["n"] % n["d"]) // n["d"],
    "range_sum": lambda n: sum(range(n["lo"], n["hi"] + 1)),
    "mixed_expression": lambda n: (n["a"] + n["b"]) * n["c"] - n["d"] // n["e"],
    "big_product": lambda n: n["a"] * n["b"] * n["c"],
    "sum_multiples": lambda n: sum(x for x in range(n["lo"], n["hi"] + 1) if x % n["k"] == 0),
    "digit_sum_power": lambda n: _digit_sum(n["base"] ** n["exp"]),
    "factory_boxes": lambda n: n["per_day"] * n["days"] // n["box"],
    "shopping_discount": lambda n: D(n["qty"]) * D(str(n["price"])) * D(100 - n["disc"]) * D(100 + n["tax"]) / 10_000,
    "train_distance": lambda n: n["trips"] * n["v1"] * n["t1"] + n["trips"] * n["v2"] * n["t2"],
    "seconds_conversion": lambda n: n["days"] * 86_400 + n["hours"] * 3_600 + n["minutes"] * 60,
    "gallons_conversion": lambda n: D(n["litres"]) / D("3.785411784"),
    "star_ages": lambda n: (n["a"] + n["y"]) + (n["k"] * n["a"] - n["m"] + n["y"]),
    "savings_months": lambda n: _ceil(n["goal"], n["income"] - n["spend"]),
    "compound_interest": lambda n: D(n["p"]) * (1 + D(str(n["r"])) / 100) ** n["n"],
    "fuel_cost": lambda n: D(n["km"]) * D(str(n["l"])) * D(str(n["price"])) / 100,
    "prize_sharing": lambda n: D(n["prize"]) * (100 - n["fee"]) / 100 / n["winners"],
    "pipes_fill": lambda n: _ceil(n["cap"], n["a"] + n["b"]),
    "orchard_leftover": lambda n: (n["rows"] * n["per_row"] * n["apples"]) % n["crate"],
    "arithmetic_series_sum": lambda n: sum(n["a"] + i * n["d"] for i in range(n["n"])),
    "arithmetic_nth_term": lambda n: n["a"] + n["d"] * (n["n"] - 1),
    "geometric_nth_term": lambda n: n["a"] * n["r"] ** (n["n"] - 1),
    "geometric_series_sum": lambda n: sum(n["a"] * n["r"] ** i for i in range(n["n"])),
    "two_term_recurrence": lambda n: _fib_like(n["x1"], n["x2"], n["n"]),
    "sum_of_squares": lambda n: n["n"] * (n["n"] + 1) * (2 * n["n"] + 1) // 6,
}


def recomputed_answer(task: Task) -> str:
    numbers, decimals = task.params["numbers"], task.params["decimals"]
    with localcontext() as ctx:
        ctx.prec = 80
        value = RECOMPUTE[task.params["template"]](numbers)
        if decimals == 0:
            assert isinstance(value, int), f"{task.task_id}: an integer template gave {value!r}"
            return str(value)
        return str(D(value).quantize(D(1).scaleb(-decimals), rounding=ROUND_HALF_UP))


def all_tasks() -> list[Task]:
    return [task for split in SPLIT_SIZES for task in load_split(split)]


# ---- splits -------------------------------------------------------------------------------------


def test_splits_have_their_sizes_task_types_and_ids():
    for split, size in SPLIT_SIZES.items():
        tasks = load_split(split)
        assert len(tasks) == size
        assert {t.task_type for t in tasks} == set(TASK_TYPES)
        assert [t.task_id for t in tasks] == [f"math/{split}/{i:04d}" for i in range(size)]
        assert all(t.env == "math" and t.split == split and t.index == i for i, t in enumerate(tasks))
        assert len({t.goal for t in tasks}) == size  # no repeated problem within a split
    assert get_task("valid_seen", 5) == load_split("valid_seen")[5]
    with pytest.raises(ValueError, match="unknown math split"):
        load_split("test")
    with pytest.raises(IndexError):
        get_task("valid_seen", SPLIT_SIZES["valid_seen"])


def test_splits_are_deterministic_and_rebuild_from_params():
    from environments.math.generator import build_split

    first = [t.to_json() for t in load_split("train")]
    build_split.cache_clear()
    assert [t.to_json() for t in load_split("train")] == first
    for task in random.Random(0).sample(all_tasks(), 60):
        numbers = Task.from_json(task.to_json()).params["numbers"]  # survives a JSON round trip
        assert build_task(task.split, task.index, task.params["template"], numbers) == task


def test_valid_unseen_uses_only_held_out_templates_and_train_none():
    used = {split: Counter(t.params["template"] for t in load_split(split)) for split in SPLIT_SIZES}
    assert set(used["valid_unseen"]) == HELD_OUT
    assert not set(used["train"]) & HELD_OUT
    assert not set(used["valid_seen"]) & HELD_OUT
    assert set(used["train"]) == set(used["valid_seen"]) == set(TEMPLATES) - HELD_OUT
    assert {TEMPLATES[name].task_type for name in HELD_OUT} == set(TASK_TYPES)  # every type has unseen templates
    train_goals = {t.goal for t in load_split("train")}
    assert not train_goals & {t.goal for t in load_split("valid_seen")}


def test_every_gold_answer_is_right():
    tasks = all_tasks()
    assert set(RECOMPUTE) == set(TEMPLATES), "add an independent recomputation for every template"
    for task in tasks:
        assert task.params["answer"] == recomputed_answer(task), task.task_id
        if task.params["decimals"]:
            assert f"Round to {task.params['decimals']} decimal places" in task.goal


def test_numbers_are_too_big_for_mental_arithmetic():
    for task in load_split("valid_seen") + load_split("valid_unseen"):
        assert max(abs(v) for v in task.params["numbers"].values()) >= 40, task.task_id


# ---- answer checking ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("1,234", 1234), ("1234.0", 1234), ("$1,234.50", 1234.5), ("1.2e6", 1_200_000), ("-7", -7), ("\u22127", -7),
    ("The answer is 42.", 42), ("So there are 8,918 full boxes after 17 days, i.e. 8918", 8918),
    ("  12345678901234567890123  ", 12345678901234567890123), ("-$5.25", -5.25), ("0.5", 0.5), (".5", 0.5),
    (42, 42), (3.25, 3.25), (1234.0, 1234), ("15%", 15),
    ("no number here", None), ("", None), (None, None), (True, None), (float("nan"), None), ([1], None), ("x2", None),
])
def test_parse_number(text, expected):
    result = parse_number(text)
    assert result == expected
    assert type(result) is type(expected)


def _task(answer: str, decimals: int) -> Task:
    return Task(task_id="math/t", env="math", split="t", task_type="arithmetic", goal="?",
                params={"template": "product_minus", "numbers": {}, "answer": answer, "decimals": decimals})


def test_check_answer_integers_are_exact():
    task = _task("1234", 0)
    for good in (1234, 1234.0, "1234", "1,234", "1234.0", "The answer is 1,234.", "$1,234"):
        assert check_answer(good, task), good
    for bad in (1235, 1233.9, "1,234.5", "12 34", "garbage", "", None, True, float("inf")):
        assert not check_answer(bad, task), bad
    big = _task("14634226941457414265", 0)  # beyond float precision: one off must still fail
    assert check_answer("14,634,226,941,457,414,265", big)
    assert not check_answer(14634226941457414266, big)
    assert not check_answer(float(14634226941457414265), big)


def test_check_answer_decimals_use_half_a_place():
    task = _task("1234.57", 2)
    for good in (1234.57, "1234.57", "$1,234.57", 1234.565, 1234.575, "1234.5701"):
        assert check_answer(good, task), good
    for bad in (1234.56, 1234.58, 1234.5649, 1234.6, 1235, "nothing", None):
        assert not check_answer(bad, task), bad
    assert score("It comes to $1,234.57.", task) == {"correct": True, "em": 1.0}
    assert score("about 1234.6", task) == {"correct": False, "em": 0.0}


def test_check_answer_names_a_task_without_gold():
    task = Task(task_id="math/x", env="math", split="t", task_type="arithmetic", goal="?", params={})
    with pytest.raises(ValueError, match="math/x"):
        check_answer(1, task)


# ---- expert -------------------------------------------------------------------------------------


def test_expert_solves_every_validation_task_and_a_train_sample():
    train = random.Random(1).sample(load_split("train"), 100)
    for task in load_split("valid_seen") + load_split("valid_unseen") + train:
        answer, steps = run_expert_offline(task)
        assert check_answer(answer, task), (task.task_id, answer, task.params["answer"])
        assert score(answer, task)["em"] == 1.0
        assert len(steps) == 2
        assert steps[1].code.startswith("final_answer(") and check_answer(steps[1].code, task)


def test_expert_steps_look_like_a_code_agent():
    task = next(t for t in load_split("valid_seen") if t.params["template"] == "factory_boxes")
    thought, code = expert_step(task, [])
    n = task.params["numbers"]
    assert f"{n['per_day']:,}" in thought and len(thought) < 200
    assert f"bolts_per_day = {n['per_day']}" in code and "print(" in code and "final_answer" not in code
    observation = "Full boxes: 8918\n"
    thought, code = expert_step(task, [observation])
    assert thought == "The result is 8,918. That is the answer."
    assert code == "final_answer(8918)"
    decimal_task = next(t for t in load_split("valid_seen") if t.params["decimals"])
    label = TEMPLATES[decimal_task.params["template"]].label
    assert expert_step(decimal_task, ["", f"noise 3\n{label}: 1234567.50\n"])[1] == "final_answer(1234567.50)"


def test_expert_computes_again_when_taking_over_from_someone_whose_code_printed_something_else():
    task = load_split("valid_unseen")[0]
    label = TEMPLATES[task.params["template"]].label
    first = expert_step(task, [])
    for observation in ("", "Traceback (most recent call last): NameError", f"{label}: None", "42"):
        assert expert_step(task, [observation]) == first
        with pytest.raises(ExpertError, match=rf"{task.task_id}.*'{label}: <number>'"):
            read_result(task, observation)
    with pytest.raises(ExpertError, match="not a generated math task"):
        expert_step(_task("1", 0).model_copy(update={"params": {}}), [])


def test_intro_shows_the_problem_and_how_to_act():
    task = load_split("valid_seen")[0]
    text = intro(task)
    assert task.goal in text
    assert "final_answer(" in text and "print" in text and "Python" in text


def test_offline_runner_keeps_globals_within_an_episode_only(monkeypatch):
    import environments.math.expert as expert

    def probe(task, observations):  # step 1 leaves a variable behind, step 2 answers with it
        if not observations:
            return "probe", "print('seen' if 'marker' in globals() else 'fresh')\nmarker = 7"
        return "answer", "final_answer(marker)"

    monkeypatch.setattr(expert, "expert_step", probe)
    task = load_split("valid_seen")[0]
    for _ in range(2):
        answer, steps = run_expert_offline(task)
        assert answer == 7 and steps[0].observation == "fresh\n" and steps[1].observation == ""
