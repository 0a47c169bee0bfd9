"""`--split PATH`: the user's own ALFWorld game folders, HotpotQA files and GSM8K files as splits."""

from __future__ import annotations

import json
import warnings

import pytest
from typer.testing import CliRunner

from agentkd.agents import play_episode
from agentkd.cli import app
from agentkd.envs import load_tasks, make_env
from agentkd.errors import FileFormatError
from agentkd.policies.expert import ExpertPolicy
from agentkd.splits import SplitFileError, UnknownSplitError, is_path, split_name
from environments.household import SkippedGamesWarning, load_split, world_for_task
from environments.household.pddl import problem_pddl

runner = CliRunner()

# ---- the split helper ---------------------------------------------------------------------------


def test_names_and_paths(tmp_path):
    assert not is_path("valid_unseen") and split_name("valid_unseen") == "valid_unseen"
    folder = tmp_path / "json_2.1.1" / "valid_unseen"
    folder.mkdir(parents=True)
    assert is_path(str(folder)) and split_name(str(folder)) == "valid_unseen"
    assert split_name(str(tmp_path / "test.jsonl")) == "test"  # written like a path: one, even before it exists
    with pytest.raises(UnknownSplitError, match=r"unknown math split 'tset'; available: train, valid_seen, "
                                                r"valid_unseen, or a path \(a GSM8K-style"):
        load_tasks("math", "tset")
    with pytest.raises(SplitFileError, match="nowhere.jsonl: no such file or folder"):
        load_tasks("math", str(tmp_path / "nowhere.jsonl"))


# ---- household: a folder of ALFWorld games ------------------------------------------------------


def _game(task, goal_extra: str = "") -> dict:
    """A game.tw-pddl dict of a native task (a stand-in domain text suffices for the native loader)."""
    world = world_for_task(task)
    problem = problem_pddl(world)
    if goal_extra:
        problem = problem.replace("(inReceptacle ?o ?r)", f"{goal_extra} (inReceptacle ?o ?r)", 1)
    return {"pddl_domain": "(define (domain alfred))",
            "grammar": json.dumps({"task": [{"rhs": f"Your task is to: {world.goal_text[:-1]}."}]}),
            "pddl_problem": problem}


def _write_games(root, games: dict[str, object]) -> None:
    for folder, game in games.items():
        path = root / folder / "trial_T2019_000" / "game.tw-pddl"
        path.parent.mkdir(parents=True)
        path.write_text(game if isinstance(game, str) else json.dumps(game))


@pytest.fixture()
def games(tmp_path):
    tasks = load_split("valid_unseen")[:3]
    root = tmp_path / "json_2.1.1" / "valid_unseen"
    folders = {f"{t.task_type}-Thing-None-Place-{i}": t for i, t in enumerate(tasks)}
    _write_games(root, {folder: _game(t) for folder, t in folders.items()})
    return root, [folders[name] for name in sorted(folders)]  # in the folder's (sorted) order


def test_a_game_folder_is_a_split_the_expert_solves(games):
    root, originals = games
    tasks = load_tasks("household", str(root))
    assert [t.split for t in tasks] == ["valid_unseen"] * 3
    assert [t.task_id for t in tasks] == sorted(t.task_id for t in tasks)
    assert tasks[0].task_id == "household/valid_unseen/look_at_obj_in_light-Thing-None-Place-1/trial_T2019_000"
    assert [t.goal for t in tasks] == [t.goal for t in originals]
    assert [t.task_type for t in tasks] == [t.task_type for t in originals]
    assert load_tasks("household", str(root)) == tasks  # deterministic
    for task in tasks:
        trajectory = play_episode(make_env("household"), ExpertPolicy(), task)
        assert trajectory.success and trajectory.split == "valid_unseen"


def test_unreadable_games_are_skipped_with_the_reason(games, monkeypatch):
    import environments.household.games as folder_games

    root, _ = games
    simple = next(t for t in load_split("valid_unseen") if t.task_type == "pick_and_place_simple")
    _write_games(root, {"pick_and_place_simple-Broken-None-Json-9": "{ not json",
                        "pick_and_place_simple-Sliced-None-Goal-9": _game(simple, "(isSliced ?o)")})
    monkeypatch.setattr(folder_games, "official_installed", lambda: False)
    with pytest.warns(SkippedGamesWarning, match=r"skipped 2 of 5 games") as caught:
        tasks = load_tasks("household", str(root))
    message = str(caught[0].message)
    assert "Broken-None-Json-9/trial_T2019_000/game.tw-pddl: not a JSON game file" in message
    assert ("Sliced-None-Goal-9/trial_T2019_000/game.tw-pddl: malformed or unsupported PDDL problem: goals with "
            "sliced objects or movable receptacles are not supported (the official engine would play it: pip "
            "install -e '.[official]')") in message
    assert message.count("official engine") == 1  # not for the file no engine reads
    assert len(tasks) == 3


def test_a_folder_without_playable_games_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SplitFileError, match=r"empty: no game.tw-pddl files in this folder .*json_2.1.1"):
        load_tasks("household", str(empty))
    _write_games(tmp_path / "broken", {"a-b": "[1, 2"})
    with pytest.warns(SkippedGamesWarning), pytest.raises(SplitFileError, match="none of its 1 games can be played"):
        load_tasks("household", str(tmp_path / "broken"))


@pytest.mark.official
def test_games_the_native_engine_cannot_read_go_to_the_official_engine(tmp_path):
    pytest.importorskip("textworld")
    pytest.importorskip("alfworld")
    pytest.importorskip("fast_downward")
    from environments.household import export_game, solve

    task = next(t for t in load_split("valid_unseen") if t.task_type == "pick_and_place_simple")
    world = world_for_task(task)
    walkthrough = [action for _, action in solve(world_for_task(task))]
    game = export_game(world, walkthrough=walkthrough)
    # A goal with two object types: the native engine reads none such, the official one plays it.
    other = sorted({t.type for t in world.things.values()} - {world.goal.obj})[0]
    second = f"(exists (?o2 - object) (and (objectType ?o2 {other}type) (inReceptacle ?o2 ?r)))"
    game["pddl_problem"] = game["pddl_problem"].replace("(inReceptacle ?o ?r)", f"(inReceptacle ?o ?r) {second}")
    root = tmp_path / "valid_unseen"
    _write_games(root, {"pick_and_place_simple-Apple-None-Fridge-1": game})
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkippedGamesWarning)  # nothing is skipped
        [official] = load_tasks("household", str(root))
    assert official.params["backend"] == "official" and official.task_type == "pick_and_place_simple"
    env = make_env("household")
    intro = env.reset(official)
    assert intro.startswith("-= Welcome to TextWorld, ALFRED! =-") and official.goal[:-1] in intro
    thought, action = env.expert_action()
    assert action == walkthrough[0] and action in env.admissible_actions()
    observation, _, _, info = env.step(action)
    assert info["admissible"] and observation != "Nothing happens."
    env.reset(load_split("valid_unseen")[0])  # the next episode is native again
    assert env.world is not None and env.admissible_actions() == env.world.admissible_commands()


# ---- math: GSM8K-style JSONL --------------------------------------------------------------------

GSM8K = [
    {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                 "How many clips did Natalia sell altogether in April and May?",
     "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
               "altogether in April and May.\n#### 72"},
    {"question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
                 "How much did she earn?", "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 "
     "minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10"},
    {"question": "A shop sells 1,250 pens a day. How many pens does it sell in 4 days?", "answer": "#### 5,000"},
]


def test_a_gsm8k_file_is_a_split_the_expert_solves(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in GSM8K) + "\n\n", encoding="utf-8")
    tasks = load_tasks("math", str(path))
    assert [t.task_id for t in tasks] == ["math/test/00001", "math/test/00002", "math/test/00003"]
    assert {t.split for t in tasks} == {"test"} and {t.task_type for t in tasks} == {"gsm8k"}
    assert [t.params["answer"] for t in tasks] == ["72", "10", "5000"]
    from environments.math import expert_step, run_expert_offline, score

    _, code = expert_step(tasks[0], [])
    assert code == 'step_1 = 48/2\nstep_2 = 48+24\nprint("Answer:", step_2)'  # the solution's own steps
    for task in tasks:
        answer, steps = run_expert_offline(task)
        assert score(answer, task)["correct"] and len(steps) == 2
    trajectory = play_episode(make_env("math"), ExpertPolicy("math"), tasks[1], max_steps=4)
    assert trajectory.success and trajectory.split == "test"


@pytest.mark.parametrize(("line", "problem"), [
    ("{oops", "Expecting property name"),
    ('{"question": "How many?"}', 'missing "answer"'),
    ('{"question": "How many?", "answer": "About 3."}', 'no "#### <number>"'),
    ('{"question": "How many?", "answer": "#### three"}', "not a number: 'three'"),
    ("[1, 2]", "expected a JSON object"),
])
def test_a_bad_gsm8k_line_names_file_line_and_problem(tmp_path, line, problem):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(GSM8K[0]) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(SplitFileError) as err:
        load_tasks("math", str(path))
    assert str(err.value).startswith(f"{path}:2: not a GSM8K problem: ") and problem in str(err.value)
    assert isinstance(err.value, FileFormatError) and err.value.line == 2


def test_the_cli_shows_a_bad_file_in_one_line(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(GSM8K[0]) + '\n{"question": "q"}\n', encoding="utf-8")
    result = runner.invoke(app, ["collect", "--env", "math", "--split", str(path), "--store", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert f'{path}:2: not a GSM8K problem: missing "answer"' in result.output.replace("\n", "")
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["eval", "--env", "household", "--student", "tiny", "--split", str(tmp_path / "no"),
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "no: no such file or folder" in result.output.replace("\n", "")


# ---- qa: HotpotQA files and their corpus --------------------------------------------------------

HOTPOT = [
    {"_id": "q1", "question": "In which country is the city where the Velmora Orchestra was founded?",
     "answer": "Karthia", "type": "bridge", "supporting_facts": [["Velmora Orchestra", 0], ["Dressa", 0]],
     "context": [["Velmora Orchestra", ["The Velmora Orchestra is a symphony orchestra", " founded in the city of "
                                        "Dressa."]],
                 ["Dressa", ["Dressa is the second largest city of Karthia."]],
                 ["Brindle Hall", ["Brindle Hall is a concert venue in Ostrova."]]]},
    {"_id": "q2", "question": "Which city is Brindle Hall in?", "answer": "Ostrova", "type": "bridge",
     "supporting_facts": [["Brindle Hall", 0]],
     "context": {"title": ["Brindle Hall"], "sentences": [["Brindle Hall is a concert venue in Ostrova."]]}},
]


def test_a_hotpot_distractor_file_is_a_split_with_its_context_as_corpus(tmp_path):
    from environments.qa import load_split, split_documents

    path = tmp_path / "hotpot_dev_distractor.json"
    path.write_text(json.dumps(HOTPOT), encoding="utf-8")
    tasks = load_split(str(path))
    assert [t.task_id for t in tasks] == ["hotpot/hotpot_dev_distractor/q1", "hotpot/hotpot_dev_distractor/q2"]
    assert {t.split for t in tasks} == {"hotpot_dev_distractor"}
    assert {t.params["corpus"] for t in tasks} == {str(path.resolve())}
    documents = split_documents(tasks[0].params["corpus"])
    assert [d.title for d in documents] == ["Velmora Orchestra", "Dressa", "Brindle Hall"]  # one per title
    assert documents[0].text == "The Velmora Orchestra is a symphony orchestra founded in the city of Dressa."


def test_a_hotpot_folder_takes_questions_and_a_corpus(tmp_path):
    from environments.qa import load_split, split_documents

    folder = tmp_path / "mine"
    folder.mkdir()
    questions = [{k: v for k, v in q.items() if k != "context"} for q in HOTPOT]
    (folder / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in questions), encoding="utf-8")
    with pytest.raises(SplitFileError, match=r"mine: no corpus to search: .*corpus.jsonl"):
        load_split(str(folder))
    (folder / "corpus.jsonl").write_text(json.dumps({"title": "Dressa", "text": "Dressa is a city of Karthia."})
                                         + "\n", encoding="utf-8")
    tasks = load_split(str(folder))
    assert [t.split for t in tasks] == ["mine", "mine"] and tasks[1].task_id == "hotpot/mine/q2"
    assert [d.title for d in split_documents(str(folder))] == ["Dressa"]
    (folder / "corpus.jsonl").write_text('{"title": "Dressa"}\n', encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"corpus.jsonl:1: not a corpus document: missing \"text\""):
        split_documents(str(folder))


def test_a_bad_hotpot_context_names_file_and_line(tmp_path):
    from environments.qa import load_split

    path = tmp_path / "dev.jsonl"
    bad = {**HOTPOT[1], "context": [["Brindle Hall", 3]]}
    path.write_text(json.dumps(HOTPOT[0]) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"dev.jsonl:2: not a HotpotQA question: \"context\": \"sentences\""):
        load_split(str(path))


@pytest.mark.slow
def test_a_hotpot_split_episode_searches_its_own_corpus(tmp_path, monkeypatch):
    """The expert answers in the code sandbox, searching the split's corpus (indexed with the real embedder)."""
    monkeypatch.setenv("AGENTKD_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(HOTPOT), encoding="utf-8")
    tasks = load_tasks("qa", str(path))
    for task in tasks:
        trajectory = play_episode(make_env("qa", max_steps=6), ExpertPolicy("qa"), task, max_steps=6)
        assert trajectory.success, [s.next_observation for s in trajectory.steps]
        assert "Ostrova" in trajectory.steps[0].next_observation or "Velmora" in trajectory.steps[0].next_observation
