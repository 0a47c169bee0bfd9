"""Code actions: the reply format and parser, voting on what candidates do, and the code environments."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from agentkd.policies.base import PolicyInput
from agentkd.policies.prompt import CODE_SYSTEM_PROMPT, build_messages, format_step, parse_output
from agentkd.replay.vote import vote_by_outcome
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


def test_vote_by_outcome_falls_back_to_code_that_ran_when_all_fail():
    failed = vote_by_outcome(["garbage", reply("boom()")], [-0.1, -3.0],
                             lambda code: Outcome("Error", {"code_error": "NameError"}))
    assert failed.agreement == 0.0 and not failed.parsed.valid and failed.parsed.action == "boom()"
    # With no executor the samples vote on their code text.
    text_vote = vote_by_outcome([reply("print(1)"), reply("print(1)"), reply("print(2)")], [-1, -1, 0], None)
    assert text_vote.parsed.action == "print(1)" and text_vote.agreement == pytest.approx(2 / 3)
