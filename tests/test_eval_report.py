"""Tests for evaluation metrics, results.json and the markdown + PNG report (agentkd.eval)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from agentkd.eval.metrics import (
    RESULTS_SCHEMA_VERSION,
    ConfigResult,
    EvalResults,
    GroupMetrics,
    ResultsFileError,
    summarize,
)
from agentkd.eval.report import failures_table, format_table, pareto_front, task_type_table, write_report
from agentkd.schema import PolicyInfo, SchemaVersionError, Step, Task, Trajectory
from environments.household import TASK_TYPES

# matplotlib reports layout trouble (collapsed axes, clipped labels) as UserWarnings: fail on them.
pytestmark = pytest.mark.filterwarnings("error::UserWarning")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SIMPLE, LIGHT, CLEAN, HEAT = TASK_TYPES[0], TASK_TYPES[1], TASK_TYPES[2], TASK_TYPES[3]

_counter = iter(range(10_000))


def episode(
    task_type: str,
    *,
    success: bool,
    steps: int,
    invalid: int = 0,
    deferred: int = 0,
    cost: float = 0.0,
    wall: float = 1.0,
    split: str = "valid_unseen",
    config: str = "sc@8",
) -> Trajectory:
    """A finished episode: ``invalid`` first steps invalid, ``deferred`` last steps deferred, 100+10 tokens a step."""
    n = next(_counter)
    task = Task(task_id=f"household/{split}/{n:04d}", env="household", split=split, task_type=task_type,
                goal="put a mug in the sink", params={"n": n})
    traj = Trajectory.start(task, PolicyInfo(kind="hf_model", name="student", params={"config": config}))
    traj.steps = [
        Step(index=i, observation="obs", action="look", valid=i >= invalid, deferred=i >= steps - deferred,
             prompt_tokens=100, completion_tokens=10)
        for i in range(steps)
    ]
    traj.cost_usd = cost
    traj.wall_time_s = wall
    return traj.finish(success)


@pytest.fixture
def sc8_episodes() -> list[Trajectory]:
    return [
        episode(SIMPLE, success=True, steps=4, invalid=1, cost=0.01, wall=2.0),
        episode(SIMPLE, success=False, steps=6, invalid=2, deferred=1, cost=0.03, wall=4.0),
        episode(LIGHT, success=True, steps=2, deferred=2, cost=0.02, wall=1.0),
        episode(CLEAN, success=False, steps=3, invalid=3, cost=0.0, wall=3.5),
    ]


def _config(name: str, successes: list[bool], cost: float, split: str = "valid_unseen",
            types: tuple[str, ...] = (SIMPLE, LIGHT)) -> ConfigResult:
    trajs = [episode(types[i % len(types)], success=s, steps=3, cost=cost, split=split, config=name)
             for i, s in enumerate(successes)]
    return ConfigResult.from_trajectories(name, trajs, description=f"{name} run", params={"name": name},
                                          task_types=TASK_TYPES)


@pytest.fixture
def results(sc8_episodes) -> EvalResults:
    return EvalResults(
        metadata={"seed": 0},
        configs=[
            _config("greedy", [True, False, False, False], cost=0.0),
            ConfigResult.from_trajectories("sc@8", sc8_episodes, params={"n": 8}, task_types=TASK_TYPES),
            _config("teacher", [True, True, True, True], cost=2.0),
            _config("sc@8+cascade0.5", [True, False, True, False], cost=3.0),  # dominated by the teacher
            # A second split where each configuration saw different task types.
            _config("greedy", [True, False], cost=0.0, split="valid_seen", types=(SIMPLE,)),
            _config("teacher", [True], cost=2.0, split="valid_seen", types=(HEAT,)),
        ],
    )


# --- metrics --------------------------------------------------------------------------------


def test_summarize_overall_matches_hand_computed(sc8_episodes):
    m = summarize(sc8_episodes).overall
    assert (m.episodes, m.successes, m.success_rate) == (4, 2, 0.5)
    assert m.steps == 15 and m.mean_steps == pytest.approx(3.75)
    assert m.mean_steps_success == pytest.approx(3.0)  # (4 + 2) / 2
    assert m.invalid_steps == 6 and m.invalid_action_rate == pytest.approx(6 / 15)
    assert m.deferred_steps == 3 and m.deferral_rate == pytest.approx(3 / 15)
    assert m.mean_tokens == pytest.approx(15 * 110 / 4)
    assert m.total_cost_usd == pytest.approx(0.06) and m.mean_cost_usd == pytest.approx(0.015)
    assert m.mean_wall_time_s == pytest.approx(10.5 / 4)


def test_summarize_by_task_type_keeps_order_and_empty_types(sc8_episodes):
    extra = episode("custom_type", success=True, steps=1)
    by_type = summarize([*sc8_episodes, extra], task_types=TASK_TYPES).by_task_type
    assert list(by_type) == [*TASK_TYPES, "custom_type"]  # listed types first, unknown ones after

    simple = by_type[SIMPLE]
    assert (simple.episodes, simple.success_rate, simple.mean_steps) == (2, 0.5, 5.0)
    assert simple.mean_steps_success == 4.0
    assert simple.invalid_action_rate == pytest.approx(0.3) and simple.deferral_rate == pytest.approx(0.1)
    assert simple.mean_cost_usd == pytest.approx(0.02)
    assert by_type[LIGHT].success_rate == 1.0 and by_type[LIGHT].deferral_rate == 1.0
    clean = by_type[CLEAN]
    assert clean.success_rate == 0.0 and clean.mean_steps_success is None and clean.invalid_action_rate == 1.0

    empty = by_type[HEAT]  # no episodes: counts are zero, rates are unknown rather than 0
    assert empty.episodes == 0 and empty.success_rate is None and empty.mean_steps is None
    assert empty.invalid_action_rate is None and empty.mean_cost_usd is None and empty.total_cost_usd == 0.0


def test_summarize_without_task_types_lists_only_seen_ones_sorted(sc8_episodes):
    assert list(summarize(sc8_episodes).by_task_type) == sorted({SIMPLE, LIGHT, CLEAN})


def test_summarize_nothing_and_zero_step_episodes():
    assert summarize([]).overall == GroupMetrics()
    m = summarize([episode(SIMPLE, success=False, steps=0)]).overall
    assert m.episodes == 1 and m.mean_steps == 0.0 and m.invalid_action_rate is None and m.deferral_rate is None


def test_config_result_split_is_inferred_and_checked(sc8_episodes):
    config = ConfigResult.from_trajectories("sc@8", sc8_episodes)
    assert config.split == "valid_unseen"
    assert [row.steps for row in config.episodes] == [4, 6, 2, 3]
    assert config.episodes[0].tokens == 440 and config.episodes[1].cost_usd == 0.03
    assert ConfigResult.from_trajectories("sc@8", sc8_episodes, keep_episodes=False).episodes == []
    assert ConfigResult.from_trajectories("none", [], split="valid_seen").metrics.overall.episodes == 0

    mixed = [*sc8_episodes, episode(SIMPLE, success=True, steps=1, split="valid_seen")]
    with pytest.raises(ValueError, match="one ConfigResult per split"):
        ConfigResult.from_trajectories("sc@8", mixed, split="valid_unseen")
    with pytest.raises(ValueError, match="pass split="):
        ConfigResult.from_trajectories("sc@8", mixed)
    with pytest.raises(ValueError, match="pass split="):
        ConfigResult.from_trajectories("sc@8", [])


# --- results.json ---------------------------------------------------------------------------


def test_results_round_trip(tmp_path, results):
    file = results.save(tmp_path / "run")  # a directory: results.json goes inside
    assert file == tmp_path / "run" / "results.json"
    assert EvalResults.load(tmp_path / "run") == results
    assert EvalResults.load(file) == results
    assert EvalResults.load(results.save(tmp_path / "named.json")) == results

    data = json.loads(file.read_text())
    assert set(data) == {"schema_version", "created_at", "metadata", "configs"}
    assert data["schema_version"] == RESULTS_SCHEMA_VERSION
    config = data["configs"][1]
    assert set(config) == {"name", "split", "env", "description", "params", "metrics", "episodes"}
    assert set(config["metrics"]) == {"overall", "by_task_type"}
    assert config["metrics"]["overall"]["success_rate"] == 0.5
    assert config["metrics"]["by_task_type"][HEAT]["success_rate"] is None  # null, not NaN
    assert set(config["episodes"][0]) == {"task_id", "task_type", "success", "steps", "cost_usd", "tokens", "goal",
                                          "invalid", "repeated", "trajectory_id"}
    assert results.splits == ["valid_unseen", "valid_seen"]
    assert results.names == ["greedy", "sc@8", "teacher", "sc@8+cascade0.5"]
    assert results.get("teacher", "valid_seen").metrics.overall.episodes == 1
    with pytest.raises(KeyError, match="no configuration"):
        results.get("teacher", "train")


def test_newer_results_file_is_refused(tmp_path, results):
    file = results.save(tmp_path)
    data = json.loads(file.read_text())
    data["schema_version"] = RESULTS_SCHEMA_VERSION + 1
    file.write_text(json.dumps(data))
    with pytest.raises(SchemaVersionError, match=r"results\.json.*upgrade agentkd"):
        EvalResults.load(tmp_path)
    with pytest.raises(ValidationError, match="upgrade agentkd"):
        EvalResults.model_validate(data)


def test_bad_results_files_name_the_file(tmp_path):
    with pytest.raises(ResultsFileError, match="no such results file"):
        EvalResults.load(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ResultsFileError, match="not valid JSON"):
        EvalResults.load(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"configs": [{"name": "x"}]}))
    with pytest.raises(ResultsFileError, match="not an agentkd results file"):
        EvalResults.load(tmp_path)


# --- tables and plots -----------------------------------------------------------------------


def _row(table: str, *cells: str) -> str:
    # The table line whose first cells are `cells` (columns are padded, so compare stripped cells).
    for line in table.splitlines():
        parts = [p.strip() for p in line.strip("|").split("|")]
        if parts[: len(cells)] == list(cells):
            return line
    raise AssertionError(f"no row starting {cells} in:\n{table}")


def test_format_table(results):
    table = format_table(results)
    lines = table.splitlines()
    assert len(lines) == 2 + len(results.configs)  # header, rule, one row per configuration × split
    assert len({len(line) for line in lines}) == 1  # padded: reads as plain text too
    row = [p.strip() for p in _row(table, "sc@8", "valid_unseen").strip("|").split("|")]
    assert row == ["sc@8", "valid_unseen", "4", "50.0%", "3.8", "40.0%", "412", "$0.015", "20.0%", "2.62 s"]
    assert "$0" in _row(table, "greedy", "valid_seen") and "$2.00" in _row(table, "teacher", "valid_seen")
    assert format_table(results, split="valid_seen").count("\n") == 3


def test_task_type_table_marks_missing_types(results):
    table = task_type_table(results, "valid_seen")
    header = [p.strip() for p in table.splitlines()[0].strip("|").split("|")]
    assert header == ["configuration", *TASK_TYPES, "all"]
    greedy = [p.strip() for p in _row(table, "greedy").strip("|").split("|")]
    assert greedy[1] == "50.0% (1/2)" and greedy[4] == "—" and greedy[-1] == "50.0% (1/2)"
    teacher = [p.strip() for p in _row(table, "teacher").strip("|").split("|")]
    assert teacher[1] == "—" and teacher[4] == "100.0% (1/1)"


def test_pareto_front():
    points = [(0.0, 25.0), (0.015, 50.0), (2.0, 100.0), (3.0, 50.0), (0.015, 40.0), (2.0, 100.0)]
    assert pareto_front(points) == [0, 1, 2, 5]  # cheapest first; equal points both kept
    assert pareto_front([]) == []


@pytest.mark.parametrize(
    ("costs", "scale"),
    [([0.0, 0.015, 2.0], "symlog"), ([0.01, 2.0], "log"), ([0.01, 0.02], "linear"), ([0.0, 0.0], "linear")],
)
def test_cost_axis_scale(costs, scale):
    from matplotlib.figure import Figure

    from agentkd.eval.report import _scale_cost_axis

    ax = Figure().add_subplot()
    _scale_cost_axis(ax, costs)
    assert ax.get_xscale() == scale


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000, path
    from PIL import Image

    with Image.open(path) as image:
        image.verify()


def test_write_report(tmp_path, results):
    report = write_report(results, tmp_path / "out")
    assert report == tmp_path / "out" / "report.md"
    text = report.read_text()
    assert text.startswith("# agentkd evaluation report")
    for config in results.configs:
        assert _row(text, config.name, config.split)
    assert "### valid_unseen" in text and "### valid_seen" in text
    assert "50.0% (1/2)" in text  # per-task-type table
    assert "Pareto-optimal (no other configuration is both cheaper and more successful): greedy, sc@8, teacher." in text
    assert '"n": 8' in text and '"seed": 0' in text  # configurations and metadata sections

    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(images) == sorted(
        f"{kind}_{split}.png" for kind in ("success_by_task_type", "success_vs_cost")
        for split in ("valid_unseen", "valid_seen")
    )
    for name in images:
        _assert_png(tmp_path / "out" / name)


def test_failed_episodes_are_listed_with_what_went_wrong(tmp_path, results):
    table = failures_table(results, "valid_unseen")
    sc8 = [line for line in table.splitlines() if line.startswith("| sc@8 ")]
    # The two failures, longest first: goal, the action written again and again, steps, refused steps.
    assert [[c.strip() for c in line.split("|")[3:7]] for line in sc8] == [
        ["put a mug in the sink", "look (×6)", "6", "2"], ["put a mug in the sink", "look (×3)", "3", "3"]]
    assert "## Failed episodes" in write_report(results, tmp_path / "out").read_text()


def test_a_refused_command_is_listed_as_the_student_wrote_it():
    """A refused step is stored with an empty action; the failures table names the command it wrote."""
    from agentkd.eval.metrics import EpisodeRow

    traj = episode(SIMPLE, success=False, steps=5, invalid=4)
    for step in traj.steps[:4]:
        step.action, step.raw_output = "", "Thought: the shelf.\nAction: go to shelf 4"
    traj.steps[3].raw_output = "I am not sure."  # no action line at all
    assert EpisodeRow.of(traj).repeated == "go to shelf 4 (×3)"


def test_report_single_config_zero_cost_and_empty_types(tmp_path):
    only = _config("greedy", [True, False, False], cost=0.0, types=(SIMPLE,))
    empty = ConfigResult.from_trajectories("nothing-ran", [], split="valid_unseen")
    results = EvalResults(configs=[only])
    text = write_report(results, tmp_path / "one").read_text()
    row = [p.strip() for p in _row(text, "greedy", "valid_unseen").strip("|").split("|")]
    assert row[3] == "33.3%" and row[7] == "$0"
    assert "more successful): greedy." in text
    for name in ("success_by_task_type_valid_unseen.png", "success_vs_cost_valid_unseen.png"):
        _assert_png(tmp_path / "one" / name)

    # A configuration with no episodes at all: a row of "—", no point, no bars, no crash.
    text = write_report(EvalResults(configs=[only, empty]), tmp_path / "two").read_text()
    assert _row(text, "nothing-ran", "valid_unseen").count("—") == 7
    _assert_png(tmp_path / "two" / "success_vs_cost_valid_unseen.png")

    text = write_report(EvalResults(configs=[empty]), tmp_path / "three").read_text()
    assert ": —." in text
    _assert_png(tmp_path / "three" / "success_by_task_type_valid_unseen.png")

    assert "No configurations" in write_report(EvalResults(), tmp_path / "none").read_text()


def test_eval_reexports_the_metrics():
    import agentkd.eval
    import agentkd.eval.metrics

    assert agentkd.eval.summarize is agentkd.eval.metrics.summarize  # (light imports: tests/test_architecture.py)


def test_other_environments_are_their_own_groups_and_merge_into_a_report(tmp_path, results):
    other = results.configs[0].model_copy(update={"env": "qa"})
    assert other.group == f"qa/{other.split}" and results.configs[0].group == other.split
    merged = EvalResults(configs=[*results.configs, other])
    assert f"qa/{other.split}" in merged.splits and merged.get(other.name, f"qa/{other.split}") is other
    assert "qa/" in format_table(merged)
    write_report(merged, tmp_path / "r")
    assert (tmp_path / "r" / f"success_by_task_type_qa-{other.split}.png").is_file()
