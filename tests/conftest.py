"""Shared fixtures: one tiny, locally built language model per test session."""

from __future__ import annotations

import pytest


def household_texts(n_tasks: int = 12) -> list[str]:
    """Intros, expert thoughts/actions and feedback of a few expert episodes (a few hundred lines)."""
    from agentkd.agents import play_episode
    from agentkd.policies.expert import ExpertPolicy
    from agentkd.policies.prompt import SYSTEM_PROMPT, format_step
    from environments.household import HouseholdEnv, load_split

    texts = [SYSTEM_PROMPT]
    for task in load_split("valid_unseen")[:n_tasks]:  # small split: loads in a blink
        trajectory = play_episode(HouseholdEnv(), ExpertPolicy(), task)
        texts.append(trajectory.steps[0].observation)
        for step in trajectory.steps:
            texts += [format_step(step.thought, step.action), step.next_observation]
    return texts


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return household_texts()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, corpus):
    """A randomly initialised tiny Qwen2 model with a tokenizer trained on household text."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from agentkd.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", corpus, seed=0)
