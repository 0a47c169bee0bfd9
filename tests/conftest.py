"""Shared fixtures: one tiny, locally built language model per test session."""

from __future__ import annotations

import pytest


def household_texts(n_tasks: int = 12) -> list[str]:
    """Intros, expert thoughts/actions and feedback of a few expert episodes (a few hundred lines)."""
    from agentkd.policies.prompt import SYSTEM_PROMPT, format_step
    from environments.household import HouseholdEnv, load_split

    env = HouseholdEnv()
    texts = [SYSTEM_PROMPT]
    for task in load_split("valid_unseen")[:n_tasks]:  # small split: loads in a blink
        texts.append(env.reset(task))
        for _ in range(40):
            thought, action = env.expert_action()
            obs, _, done, _ = env.step(action)
            texts += [format_step(thought, action), obs]
            if done:
                break
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
