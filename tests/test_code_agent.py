"""Code actions: the reply format and parser, voting on what candidates do, and the code environments."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from agentkd.policies.base import PolicyInput
from agentkd.policies.prompt import CODE_SYSTEM_PROMPT, build_messages, format_step, parse_output
from agentkd.replay.self_consistency import vote_by_outcome
from agentkd.schema import Step, Task

QA_TASK = Task(task_id="qa-x", env="qa", split="train", task_type="bridge", goal="Where was X born?", params={})


# ---- reply format ---------------------------------------------------------------------------------


def test_code_replies_round_trip_through_format_and_parser():
    code = 'hits = search("Zorvex Labs")\nprint(hits)'
    text = format_step("I look up the company.", code, code=True)
    assert text.endswith("```") and "Code:\n```py\n" in text
    parsed = parse_output(text, None, code=True)
    assert parsed.valid and parsed.action == code and parsed.thought == "I look up the company."


@pytest.mark.parametrize(("text", "action"), [
    ("Thought: done\nCode: final_answer(42)", "final_answer(42)"),  # one line, no fence
    ("Code: ```py\nx = 1\n```", "x = 1"),  # the fence opens on the label's line
    ("Thought: t\nCode:\n```python\nx = 1\nx\n", "x = 1\nx"),  # cut before the closing fence, still complete
    ("Thought: t\n```py\n    y = 2\n    print(y)\n```", "y = 2\nprint(y)"),  # fence without a label, indented
    ("<think>plan</think>\nCode:\n```py\nprint(1)\n```\nextra words", "print(1)"),
])
def test_code_parser_accepts(text, action):
    parsed = parse_output(text, None, code=True)
    assert parsed.valid and parsed.action == action


@pytest.mark.parametrize(("text", "error"), [
    ("", "empty output"),
    ("Thought: I will think more", "no code found"),
    ("Thought: t\nCode:\n```py\n\n```", "code block is empty"),
    ("Thought: t\nCode:\n```py\nprint((1 +\n", "does not parse"),  # a reply cut at its token cap
])
def test_code_parser_rejects_with_a_reason(text, error):
    parsed = parse_output(text, None, code=True)
    assert not parsed.valid and error in parsed.error


def test_code_environments_get_the_code_prompt_and_history():
    step = Step(index=0, observation="Q", thought="search", action='print(search("X"))', next_observation="[1] X")
    messages = build_messages(PolicyInput(task=QA_TASK, observation="[1] X", history=[step]), None, False)
    assert messages[0]["content"] == CODE_SYSTEM_PROMPT
    assert messages[2]["content"] == format_step("search", 'print(search("X"))', code=True)


# ---- voting on outcomes ---------------------------------------------------------------------------


@dataclass
class Outcome:
    observation: str
    info: dict = field(default_factory=dict)


def reply(code: str) -> str:
    return format_step("t", code, code=True)


def test_vote_by_outcome_counts_answers_drops_errors_and_runs_each_code_once():
    ran: list[str] = []

    def run(code: str) -> Outcome:
        ran.append(code)
        if "boom" in code:
            return Outcome("Error: NameError", {"code_error": "NameError: boom"})
        if "final_answer" in code:
            return Outcome("Final answer", {"answer": code.split("(")[1].rstrip(")").strip('"')})
        return Outcome("printed " + code)

    texts = [reply('final_answer("Paris")'), reply('final_answer("paris")'), reply('final_answer("Rome")'),
             reply("boom()"), reply("boom()"), reply('final_answer("Paris")'), "no code here"]
    outcome = vote_by_outcome(texts, [-1.0, -0.5, -0.1, -0.01, -0.01, -2.0, -0.01], run)
    assert outcome.parsed.action == 'final_answer("paris")'  # Paris ×3 (case-folded), its best sample
    assert outcome.agreement == pytest.approx(3 / 7)
    assert sorted(ran) == sorted({'final_answer("Paris")', 'final_answer("paris")', 'final_answer("Rome")', "boom()"})
    assert sum(not c.valid for c in outcome.candidates) == 3  # two errors, one unparseable

    # Without answers, candidates agree on what they print — not on their text.
    same = vote_by_outcome([reply("print(2+2)"), reply("print(4)"), reply("print(5)")], [-1, -1, -0.1],
                           lambda code: Outcome(str(eval(code[6:-1]))))
    assert same.agreement == pytest.approx(2 / 3) and same.parsed.action in ("print(2+2)", "print(4)")


def test_vote_by_outcome_compares_numbers_as_numbers_and_never_lets_silent_code_agree():
    answers = {"a": "42", "b": "42.0", "c": "4.2e1", "d": "41"}
    numbers = vote_by_outcome([reply(f"{x} = 1") for x in "abcd"], [-1.0, -1.0, -1.0, -0.1],
                              lambda code: Outcome("Final answer", {"answer": answers[code[0]]}))
    assert numbers.agreement == pytest.approx(3 / 4) and numbers.parsed.action != "d = 1"
    silent = vote_by_outcome([reply("x = 1"), reply("y = 2"), reply("x = 1")], [-1.0, -0.1, -1.0],
                             lambda code: Outcome("(no output)", {"silent": True}))
    assert silent.parsed.action == "x = 1" and silent.agreement == pytest.approx(2 / 3)  # same code, not same silence


def test_vote_by_outcome_falls_back_to_code_that_ran_when_all_fail():
    failed = vote_by_outcome(["garbage", reply("boom()")], [-0.1, -3.0],
                             lambda code: Outcome("Error", {"code_error": "NameError"}))
    assert failed.agreement == 0.0 and not failed.parsed.valid and failed.parsed.action == "boom()"
    # With no executor the samples vote on their code text.
    text_vote = vote_by_outcome([reply("print(1)"), reply("print(1)"), reply("print(2)")], [-1, -1, 0], None)
    assert text_vote.parsed.action == "print(1)" and text_vote.agreement == pytest.approx(2 / 3)


# ---- the code environments (real sandbox) ----------------------------------------------------------


@pytest.fixture
def math_env():
    from agentkd.envs import make_env

    env = make_env("math")
    yield env
    env.close()


def test_the_math_expert_solves_tasks_through_the_sandboxed_environment(math_env):
    from agentkd.agents import play_episode
    from agentkd.policies.expert import ExpertPolicy
    from environments.math import load_split

    for task in load_split("valid_unseen")[:3]:
        trajectory = play_episode(math_env, ExpertPolicy("math"), task, max_steps=4)
        assert trajectory.success and trajectory.num_steps == 2
        assert "Final answer:" in trajectory.steps[-1].next_observation
        assert all(step.valid for step in trajectory.steps)


def test_try_action_forks_and_step_adopts_only_the_winner(math_env):
    from environments.math import load_split

    math_env.reset(load_split("valid_seen")[0])
    math_env.step("x = 41")
    plus_one, plus_two = "x += 1\nprint(x)", "x += 2\nprint(x)"
    assert math_env.try_action(plus_one).observation == "42"
    assert math_env.try_action(plus_two).observation == "43"
    assert math_env.try_action("print(x)").observation == "41"  # candidates never touch the episode's state
    before = math_env.sandbox
    observation, reward, done, info = math_env.step(plus_two)  # the winner's fork continues
    assert observation == "43" and not done and info["admissible"]
    assert before.closed and not math_env.sandbox.closed  # the interpreter it was forked from is gone
    assert math_env.step("print(x)")[0] == "43"
    crashed = math_env.try_action("1 / 0")
    assert "ZeroDivisionError" in crashed.observation and crashed.info["code_error"]


def test_a_reply_without_code_is_told_so_and_runs_nothing(math_env):
    from environments.code_env import NO_CODE
    from environments.math import load_split

    math_env.reset(load_split("valid_seen")[0])
    observation, reward, done, info = math_env.step("")
    assert observation == NO_CODE and not done and info["admissible"] is False


def test_a_wrong_final_answer_ends_the_episode_without_reward(math_env):
    from environments.math import load_split

    math_env.reset(load_split("valid_seen")[1])
    observation, reward, done, info = math_env.step("final_answer(-1)")
    assert done and reward == 0.0 and info["won"] is False and "Final answer: -1" in observation


def test_a_garbage_student_in_a_code_environment_is_capped_and_the_episode_goes_on(model_dir):
    from agentkd.agents import play_episode
    from agentkd.envs import make_env
    from agentkd.replay.policy import StudentPolicy
    from environments.math import load_split

    env = make_env("math")
    try:
        trajectory = play_episode(env, StudentPolicy(str(model_dir), samples=3, max_new_tokens=8),
                                  load_split("valid_unseen")[0], max_steps=3)
    finally:
        env.close()
    assert trajectory.num_steps == 3 and not trajectory.success
    assert not any(step.valid for step in trajectory.steps)
    assert all(step.raw_output for step in trajectory.steps)


def test_the_qa_expert_searches_from_inside_the_sandbox():
    from agentkd.agents import play_episode
    from agentkd.envs import make_env
    from agentkd.policies.expert import ExpertPolicy
    from environments.qa import load_split

    env = make_env("qa")
    try:
        for task in load_split("valid_unseen")[:2]:
            trajectory = play_episode(env, ExpertPolicy("qa"), task, max_steps=8)
            assert trajectory.success, [s.next_observation for s in trajectory.steps]
            assert "search(" in trajectory.steps[0].action and "[1]" in trajectory.steps[0].next_observation
    finally:
        env.close()


@pytest.mark.slow
def test_the_demo_runs_for_code_environments_and_adds_their_rows_to_the_report(tmp_path):
    from rich.console import Console

    from agentkd.demo import DemoConfig, run_demo
    from agentkd.eval.metrics import EvalResults

    for env in ("math", "qa"):
        config = DemoConfig(workdir=str(tmp_path / "demo"), env=env, student="tiny", expert_episodes=12,
                            sft_epochs=0.25, train_minutes=None, rollouts=2,
                            splits=("valid_seen", "valid_unseen"), configs="greedy,sc@2", max_tasks=2, max_steps=3)
        with open(tmp_path / f"{env}.log", "w") as log:
            run_demo(config, Console(file=log))
        assert (tmp_path / "demo" / "students" / env / "redi" / "training_summary.json").is_file()
    results = EvalResults.load(tmp_path / "demo" / "report")
    assert sorted(results.splits) == sorted(f"{env}/{split}" for env in ("math", "qa")
                                            for split in ("valid_seen", "valid_unseen"))
    assert all(c.metrics.overall.episodes == 2 for c in results.configs)
    assert "qa/valid_unseen" in (tmp_path / "demo" / "report" / "report.md").read_text()
