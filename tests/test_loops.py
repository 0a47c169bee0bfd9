"""Going in circles: revisits found from the history, avoided by the vote, deferred by the cascade."""

from __future__ import annotations

from agentkd.agents import play_episode
from agentkd.policies.base import Decision, PolicyInput
from agentkd.policies.expert import ExpertPolicy
from agentkd.replay.cascade import CascadePolicy
from agentkd.replay.loops import tried_here, untried
from agentkd.replay.self_consistency import vote
from agentkd.schema import PolicyInfo, Step
from environments.household import HouseholdEnv, load_split

ADMISSIBLE = ["go to shelf 1", "go to shelf 2", "go to shelf 3"]


def _at(observation: str, history: list[tuple[str, str]]) -> PolicyInput:
    steps = [Step(index=i, observation=o, action=a) for i, (o, a) in enumerate(history)]
    return PolicyInput(task=load_split("valid_unseen")[0], observation=observation, history=steps,
                       admissible_actions=ADMISSIBLE)


def test_an_action_taken_from_the_same_observation_is_a_revisit():
    inp = _at("At shelf 2.", [("At shelf 1.", "go to shelf 2"), ("At shelf 2.", "Go to  shelf 1"),
                              ("At shelf 1.", "go to shelf 2")])
    assert tried_here(inp) == {"go to shelf 1"}  # from shelf 1 it went to shelf 2, which is not here
    assert untried(ADMISSIBLE, tried_here(inp)) == ["go to shelf 2", "go to shelf 3"]
    assert untried(ADMISSIBLE, {a for a in ADMISSIBLE}) == ADMISSIBLE  # nothing untried: every action stays


def test_the_vote_ranks_an_untried_action_before_a_revisit_but_still_takes_one_when_alone():
    texts = ["Action: go to shelf 1"] * 5 + ["Action: go to shelf 3"] * 2
    chosen = vote(texts, [-0.1] * 7, ADMISSIBLE, avoid={"go to shelf 1"})
    assert chosen.parsed.action == "go to shelf 3" and chosen.agreement == 2 / 7
    assert [c.action for c in chosen.candidates] == ["go to shelf 3", "go to shelf 1"]
    assert vote(texts[:5], [-0.1] * 5, ADMISSIBLE, avoid={"go to shelf 1"}).parsed.action == "go to shelf 1"


class Circling:
    """A confident student that walks back and forth between two places (every sample agrees)."""

    info = PolicyInfo(kind="scripted", name="circling")

    def act(self, inputs: list[PolicyInput]) -> list[Decision]:
        decisions = []
        for inp in inputs:
            places = sorted(a for a in inp.admissible_actions if a.startswith("go to "))[:2]
            decisions.append(Decision(action=places[len(inp.history) % 2], info={"agreement": 1.0}))
        return decisions


def test_the_cascade_defers_a_revisit_to_the_teacher_even_when_the_samples_agree():
    task = load_split("valid_unseen")[1]
    alone = play_episode(HouseholdEnv(), CascadePolicy(Circling(), ExpertPolicy(), 0.5, revisits=False), task,
                         max_steps=12)
    assert not alone.success and not any(s.deferred for s in alone.steps)

    helped = play_episode(HouseholdEnv(), CascadePolicy(Circling(), ExpertPolicy(), 0.5), task, max_steps=50)
    deferred = [s for s in helped.steps if s.deferred]
    assert helped.success and deferred
    assert {s.info["deferred_for"] for s in deferred} == {"revisit"}
    first = helped.steps.index(deferred[0])
    assert first >= 2  # the first two steps are new places; the loop starts after them
    assert len(deferred) < helped.num_steps  # the student still plays the steps that are not revisits


def test_noloop_is_a_configuration_of_its_own():
    from agentkd.eval.run import parse_configs

    config = parse_configs("sc@8+constrained+noloop")[0]
    assert config.noloop and config.constrained and "avoiding actions" in config.describe()
    assert not parse_configs("sc@8+constrained")[0].noloop


def test_a_refused_command_repeated_after_its_nothing_happens_is_a_revisit():
    # A model's refused command is stored with an empty action; what it wrote is in raw_output.
    refused = dict(action="", valid=False, raw_output="Thought: I go to the fridge.\nAction: go to fridge 1",
                   next_observation="Nothing happens.")
    steps = [Step(index=0, observation="You arrive at fridge 1.", **refused),
             Step(index=1, observation="Nothing happens.", **refused)]
    inp = PolicyInput(task=load_split("valid_unseen")[0], observation="Nothing happens.", history=steps,
                      admissible_actions=ADMISSIBLE)
    assert tried_here(inp) == {"go to fridge 1"}
    silent = Step(index=0, observation="Nothing happens.", action="", valid=False, raw_output="I am not sure.")
    assert tried_here(PolicyInput(task=inp.task, observation="Nothing happens.", history=[silent])) == set()
