"""Shared fixtures: one tiny, locally built language model per test session."""

from __future__ import annotations

import os

import pytest

# The suite loads many models in one process and starts CLI runs beside it: none of that is a user's
# second job on the CPU (tests/test_cpu_jobs.py turns the check back on where it is under test).
os.environ["AGENTKD_CPU_JOBS"] = "0"


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


@pytest.fixture(scope="session")
def mixed_store(tmp_path_factory, model_dir):
    """A real Chroma store with expert successes and a random tiny student's failures on the same tasks.

    24 expert episodes of valid_unseen (all won) and 8 student episodes of its first 8 tasks, cut at
    4 steps (all lost): enough for SFT, REDI trajectory and step pairs, and GRPO prompts.
    """
    from agentkd.collection import collect
    from agentkd.policies.expert import ExpertPolicy
    from agentkd.policies.hf import HFPolicy
    from agentkd.store import ExperienceStore

    root = tmp_path_factory.mktemp("mixed_store")
    store = ExperienceStore(root / "store", spool_dir=root / "spool")
    collect(ExpertPolicy(), "household", "valid_unseen", 24, store)
    collect(HFPolicy(str(model_dir), max_new_tokens=24), "household", "valid_unseen", 8, store, max_steps=4)
    return store
