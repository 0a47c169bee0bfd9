"""The ReAct prompt (build_messages) and the lenient output parser (parse_output)."""

from __future__ import annotations

import pytest

from agentkd.agents import play_episode
from agentkd.policies.base import PolicyInput
from agentkd.policies.expert import ExpertPolicy
from agentkd.policies.prompt import ParsedAction, build_messages, format_step, parse_output
from environments.household import HouseholdEnv, load_split

ADMISSIBLE = [
    "go to cabinet 1",
    "go to cabinet 10",
    "go to countertop 1",
    "open cabinet 1",
    "take soapbar 1 from countertop 1",
    "look",
    "inventory",
]


# ---------------------------------------------------------------------------------------------
# build_messages


@pytest.fixture(scope="module")
def household_episode():
    """A real household task with the expert's first three steps."""
    env = HouseholdEnv(max_steps=3)
    task = load_split("valid_seen")[0]
    steps = play_episode(env, ExpertPolicy(), task, max_steps=3).steps
    return task, steps, steps[-1].next_observation, env.admissible_actions()


def test_first_step_messages(household_episode):
    task, steps, _, _ = household_episode
    inp = PolicyInput(task=task, observation=steps[0].observation, admissible_actions=steps[0].admissible_actions)
    messages = build_messages(inp)
    assert [m["role"] for m in messages] == ["system", "user"]
    system, user = messages[0]["content"], messages[1]["content"]
    assert "Thought:" in system and "Action:" in system and "admissible" in system.lower()
    assert "Principles" not in system
    assert task.goal in user
    assert steps[0].observation.strip() in user
    assert "Admissible actions:" in user
    for action in steps[0].admissible_actions:
        assert f"- {action}\n" in user + "\n"


def test_history_turns_alternate(household_episode):
    task, steps, obs, admissible = household_episode
    inp = PolicyInput(task=task, observation=obs, history=steps, admissible_actions=admissible)
    messages = build_messages(inp)
    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert task.goal in messages[1]["content"]  # goal once, in the first user turn
    assert sum(task.goal in m["content"] for m in messages) == 1
    for k, step in enumerate(steps):
        assert step.observation.strip() in messages[1 + 2 * k]["content"]
        assert messages[2 + 2 * k]["content"] == format_step(step.thought, step.action)
        assert messages[2 + 2 * k]["content"].startswith("Thought: ")
        assert messages[2 + 2 * k]["content"].endswith(f"\nAction: {step.action}")
    assert obs.strip() in messages[-1]["content"]
    assert "Admissible actions:" in messages[-1]["content"]
    # Every assistant turn of the prompt parses back to its own action.
    for msg in messages:
        if msg["role"] == "assistant":
            parsed = parse_output(msg["content"], None)
            assert parsed.valid and msg["content"].endswith(parsed.action)


def test_history_shows_the_action_the_model_actually_wrote(household_episode):
    """ALFWorld answers a bad command with "Nothing happens."; the agent must see its own command to try another."""
    task, steps, obs, admissible = household_episode
    wrote = "Thought: the toilet is next.\nAction: go to toilet 2"
    wrong = steps[0].model_copy(update={"action": "", "valid": False, "raw_output": wrote,
                                        "next_observation": "Nothing happens."})
    messages = build_messages(PolicyInput(task=task, observation="Nothing happens.", history=[wrong],
                                          admissible_actions=admissible), max_history=None, show_admissible=False)
    assert messages[2] == {"role": "assistant", "content": wrote}
    assert messages[3]["content"] == "Observation: Nothing happens."


def test_history_window_and_open_action_space(household_episode):
    task, steps, obs, _ = household_episode
    inp = PolicyInput(task=task, observation=obs, history=steps, admissible_actions=None)
    messages = build_messages(inp, max_history=1)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "2 earlier steps not shown" in messages[1]["content"]
    assert task.goal in messages[1]["content"]
    assert steps[-1].observation.strip() in messages[1]["content"]
    assert "Admissible actions" not in messages[-1]["content"]

    no_history = build_messages(inp, max_history=0)
    assert [m["role"] for m in no_history] == ["system", "user"]
    assert "3 earlier steps not shown" in no_history[1]["content"]


def test_principles_in_system_message(household_episode):
    task, steps, _, _ = household_episode
    principles = ["Check the countertop first.", "Open closed receptacles before looking inside."]
    inp = PolicyInput(task=task, observation=steps[0].observation, principles=principles)
    system = build_messages(inp)[0]["content"]
    assert "Principles:" in system
    for p in principles:
        assert f"- {p}" in system


# ---------------------------------------------------------------------------------------------
# parse_output: accepted variations

VALID_CASES = [
    # canonical
    ("Thought: I need a soapbar.\nAction: go to countertop 1", "go to countertop 1", "I need a soapbar."),
    # labels: case, spelling, spacing
    ("thought: check the cabinet\naction: open cabinet 1", "open cabinet 1", "check the cabinet"),
    ("THOUGHT:   look around\nACTION:    look", "look", "look around"),
    ("Think: first the cabinet\nAct: go to cabinet 1", "go to cabinet 1", "first the cabinet"),
    ("think: first the cabinet\nact:go to cabinet 1", "go to cabinet 1", "first the cabinet"),
    ("  Thought : spaced label\n  Action :   go to cabinet 1  ", "go to cabinet 1", "spaced label"),
    ("Thought：全角\nAction：look", "look", "全角"),
    # ALFWorld ReAct style
    ("> think: The soapbar may be on the countertop.\n> go to countertop 1", "go to countertop 1",
     "The soapbar may be on the countertop."),
    ("> go to cabinet 1", "go to cabinet 1", ""),
    ("> Action: open cabinet 1", "open cabinet 1", ""),
    # markdown
    ("**Thought:** I should open it.\n**Action:** open cabinet 1", "open cabinet 1", "I should open it."),
    ("**Thought**: hmm\n**Action**: `open cabinet 1`", "open cabinet 1", "hmm"),
    ("```\nThought: fenced\nAction: go to cabinet 1\n```", "go to cabinet 1", "fenced"),
    ("```text\nThought: fenced\nAction: go to cabinet 1\n```\n", "go to cabinet 1", "fenced"),
    ("### Thought:\nLong reasoning here.\n### Action:\ngo to cabinet 10", "go to cabinet 10", "Long reasoning here."),
    ("- Thought: bullet\n- Action: look", "look", "bullet"),
    # quotes and punctuation around the action
    ('Thought: x\nAction: "go to cabinet 1"', "go to cabinet 1", "x"),
    ("Thought: x\nAction: 'go to cabinet 1'.", "go to cabinet 1", "x"),
    ("Thought: x\nAction: go to cabinet 1.", "go to cabinet 1", "x"),
    ("Thought: x\nAction: “go to cabinet 1”!", "go to cabinet 1", "x"),
    ("Thought: x\nAction: [go to cabinet 1]", "go to cabinet 1", "x"),
    ("Thought: x\nAction: <go to cabinet 1>", "go to cabinet 1", "x"),
    ("Thought: x\nAction: (go to cabinet 1).", "go to cabinet 1", "x"),
    # case and whitespace normalised to the admissible spelling
    ("Thought: x\nAction: Go To   Cabinet 1", "go to cabinet 1", "x"),
    ("Thought: x\nAction: TAKE soapbar 1 FROM countertop 1", "take soapbar 1 from countertop 1", "x"),
    # value on the next line
    ("Thought: x\nAction:\n  go to cabinet 1", "go to cabinet 1", "x"),
    # only the first of several actions, and nothing after it
    ("Thought: x\nAction: go to cabinet 1\nAction: open cabinet 1", "go to cabinet 1", "x"),
    ("Thought: x\nAction: go to cabinet 1\nObservation: You arrive at cabinet 1.\nThought: y\nAction: open cabinet 1",
     "go to cabinet 1", "x"),
    # a short explanation after the action
    ("Thought: x\nAction: go to cabinet 1 (it may hold the soap)", "go to cabinet 1", "x"),
    ("Thought: x\nAction: go to cabinet 1, then open it", "go to cabinet 1", "x"),
    # multi-line thoughts, several thought blocks, unlabelled thought
    ("Thought: line one\nline two\nAction: look", "look", "line one line two"),
    ("Thought: a\nThought: b\nAction: look", "look", "a b"),
    ("I should look around first.\nAction: look", "look", "I should look around first."),
    # both labels on one line
    ("Thought: I go there. Action: go to cabinet 1", "go to cabinet 1", "I go there."),
    # reasoning-model tags
    ("<think>the cabinet is closed</think>\nAction: open cabinet 1", "open cabinet 1", "the cabinet is closed"),
    ("<think>closed</think>\nopen cabinet 1", "open cabinet 1", "closed"),
    # action only, no label: accepted when the whole output is an admissible action
    ("go to cabinet 1", "go to cabinet 1", ""),
    ("  Open Cabinet 1.  \n", "open cabinet 1", ""),
    ('"look"', "look", ""),
]


@pytest.mark.parametrize(("text", "action", "thought"), VALID_CASES)
def test_parse_accepts_variations(text, action, thought):
    parsed = parse_output(text, ADMISSIBLE)
    assert parsed == ParsedAction(action=action, thought=thought, valid=True, error=None)


def test_parse_without_admissible_keeps_the_action_text():
    parsed = parse_output("Thought: search\nAction: Search[ Milan  Cathedral ]", None)
    assert parsed.valid and parsed.action == "Search[ Milan Cathedral ]"  # brackets inside an action stay
    parsed = parse_output("Thought: go\nAction:  Go To Cabinet 1. ", None)
    assert parsed == ParsedAction(action="Go To Cabinet 1", thought="go")


# ---------------------------------------------------------------------------------------------
# parse_output: rejected outputs

INVALID_CASES = [
    ("", "no action found"),
    ("   \n\n ", "no action found"),
    ("Thought: I am not sure what to do.", "no action found"),
    ("I think I should go to the cabinet.", "no action found"),
    ("Thought: x\nAction:", "no action found"),
    ("Thought: x\nAction:   \n", "no action found"),
    ("Thought: x\nAction: \"\"", "no action found"),
    ("Thought: x\nAction: fly to the moon", "not admissible"),
    ("Thought: x\nAction: go to cabinet 2", "not admissible"),
    ("Thought: x\nAction: go to cabinet 1 and open it", "not admissible"),  # more words are not a separator
    ("Thought: x\nAction: go to cabinet 100", "not admissible"),  # not a prefix match of "go to cabinet 10"
    ("go to cabinet 1\nopen cabinet 1", "no action found"),  # several bare lines: ambiguous
    ("Ġgo Ġto Ġcab ĠĠ<|im_end|> inet", "no action found"),  # random-model garbage
    ("Actions speak louder than words.", "no action found"),
    ("Thought: x\nAction Input: go to cabinet 1", "no action found"),
]


@pytest.mark.parametrize(("text", "error"), INVALID_CASES)
def test_parse_rejects(text, error):
    parsed = parse_output(text, ADMISSIBLE)
    assert parsed.valid is False
    assert parsed.action == ""
    assert parsed.error is not None and parsed.error.startswith(error)


def test_parse_keeps_thought_of_invalid_outputs():
    parsed = parse_output("Thought: the soap is near\nAction: grab soap", ADMISSIBLE)
    assert not parsed.valid and parsed.thought == "the soap is near"
    assert parsed.error == "not admissible: 'grab soap'"


def test_bare_action_needs_admissible_list():
    assert not parse_output("go to cabinet 1", None).valid


def test_parse_never_raises_on_odd_input():
    for text in [None, 123, "Action: " + "x" * 10_000, "\x00\x01", "Action:\n" * 50, "> ", ">>>> think:"]:
        parsed = parse_output(text, ADMISSIBLE)  # type: ignore[arg-type]
        assert isinstance(parsed, ParsedAction)
        assert parsed.valid is False and parsed.action == ""
    long = parse_output("Thought: x\nAction: " + "y" * 500, ADMISSIBLE)
    assert len(long.error or "") < 120
