"""+retry: hotter rounds of samples for a step where no sample names an admissible action."""

from __future__ import annotations

import pytest

from agentkd.policies.base import PolicyInput
from environments.household import load_split

pytest.importorskip("torch")

ADMISSIBLE = ["go to shelf 1", "go to shelf 2", "go to shelf 3"]


@pytest.fixture(scope="module")
def engine(model_dir):
    from agentkd.replay.engine import ReplayEngine

    return ReplayEngine(str(model_dir))


def _inputs(admissible=ADMISSIBLE):
    return [PolicyInput(task=task, observation="You are in the middle of a room.", admissible_actions=admissible)
            for task in load_split("valid_unseen")[:2]]


def test_a_step_whose_samples_are_all_refused_draws_hotter_rounds_and_counts_them(engine):
    """A random student never writes an admissible action: every step takes all its rounds, each paid for."""
    from agentkd.replay.policy import RETRY_SAMPLES, StudentPolicy

    plain = StudentPolicy(engine, samples=2, max_new_tokens=8).act(_inputs())
    retried = StudentPolicy(engine, samples=2, max_new_tokens=8, retry=2)
    first = retried.act(_inputs())
    assert retried.info.params["retry"] == 2
    for before, after in zip(plain, first, strict=True):
        assert not after.valid and after.info["samples"] == 2 + 2 * RETRY_SAMPLES
        assert sum(c.votes for c in after.candidates) == 0 and len(after.candidates) == 2 + 2 * RETRY_SAMPLES
        assert after.completion_tokens > before.completion_tokens
        assert retried.cost_usd(after) > retried.cost_usd(before)
    again = retried.act(_inputs())  # seeded by task, seed, step and round: a resumed episode draws the same
    assert [d.raw_output for d in again] == [d.raw_output for d in first]
    assert [[c.raw for c in d.candidates] for d in again] == [[c.raw for c in d.candidates] for d in first]

    open_space = retried.act(_inputs(admissible=None))  # nothing to check a sample against: no retry
    assert all("samples" not in d.info and len(d.candidates) == 2 for d in open_space)


def test_retrying_stops_at_the_first_round_with_a_fresh_valid_action_and_leaves_the_other_episodes_alone(engine):
    from agentkd.replay.engine import ReplayEngine, Sample
    from agentkd.replay.policy import StudentPolicy

    class Scripted(ReplayEngine):
        """The real engine's tokenizer and card; replies scripted per round (what a student would write)."""

        def __init__(self, real, rounds):
            self.__dict__.update(real.__dict__)
            self.rounds, self.requests = rounds, []

        def generate(self, requests):
            self.requests.append(requests)
            texts = self.rounds[len(self.requests) - 1]
            return [[Sample(token_ids=[1, 2], text=texts[r.seed.split(":")[0]], logprob=-1.0, finish_reason="stop")
                     for _ in range(r.n)] for r in requests]

    first, second = (task.task_id for task in load_split("valid_unseen")[:2])
    scripted = Scripted(engine, [
        {first: "Action: go to shelf 4", second: "Action: go to shelf 2"},  # the first refused, the second fine
        {first: "Thought: only three.\nAction: go to shelf 3"},
        {first: "Action: go to shelf 1"},  # never asked: the second round found a valid action
    ])
    decisions = StudentPolicy(scripted, samples=8, retry=2).act(_inputs())
    assert [d.action for d in decisions] == ["go to shelf 3", "go to shelf 2"] and all(d.valid for d in decisions)
    assert len(scripted.requests) == 2
    (hotter,) = scripted.requests[1]
    assert hotter.seed.startswith(first) and hotter.seed.endswith(":retry1") and hotter.temperature == 1.0
    assert decisions[0].info["agreement"] == 0.5 and decisions[0].info["samples"] == 16
    assert decisions[0].thought == "only three."
    assert "samples" not in decisions[1].info


def test_noloop_retries_a_step_whose_only_valid_action_was_already_tried_here(engine):
    from agentkd.replay.engine import ReplayEngine, Sample
    from agentkd.replay.policy import StudentPolicy
    from agentkd.schema import Step

    class Scripted(ReplayEngine):
        def __init__(self, real):
            self.__dict__.update(real.__dict__)
            self.calls = 0

        def generate(self, requests):
            self.calls += 1
            text = "Action: go to shelf 1" if self.calls == 1 else "Action: go to shelf 2"
            return [[Sample(token_ids=[1], text=text, logprob=-1.0, finish_reason="stop")] * r.n for r in requests]

    here = "You are in the middle of a room."
    inp = PolicyInput(task=load_split("valid_unseen")[0], observation=here, admissible_actions=ADMISSIBLE,
                      history=[Step(index=0, observation=here, action="go to shelf 1")])
    (looping,) = StudentPolicy(Scripted(engine), samples=4, noloop=True, retry=1).act([inp])
    assert looping.action == "go to shelf 2"
    (plain,) = StudentPolicy(Scripted(engine), samples=4, noloop=True).act([inp])
    assert plain.action == "go to shelf 1"  # without +retry the tried action is all it has


def test_retry_is_a_configuration_of_its_own(engine):
    from agentkd.errors import ConfigError
    from agentkd.eval.run import RETRY_ROUNDS, parse_configs
    from agentkd.replay.policy import StudentPolicy

    config = parse_configs("sc@8+noloop+retry")[0]
    assert config.retry and config.noloop and "resampling hotter" in config.describe()
    assert config.student_options() == {"samples": 8, "constrained": False, "noloop": True, "retry": RETRY_ROUNDS}
    assert parse_configs("sc@8")[0].student_options()["retry"] == 0
    with pytest.raises(ConfigError, match="retry"):
        StudentPolicy(engine, retry=-1)
