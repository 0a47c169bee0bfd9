"""Episode journals: an episode stopped mid-way resumes from its last step (agentkd.agents.journal)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from agentkd.collection import collect_async, plan_episodes
from agentkd.eval.run import MemoryStore
from agentkd.policies.base import Decision
from agentkd.schema import PolicyInfo
from environments.household import load_split


class Scripted:
    """A policy whose action depends only on what it is shown (as a seeded student's does): an admissible action
    picked by the step's index. Counts the steps it is asked for and raises at step ``stop_at`` (a run stopped
    there)."""

    def __init__(self, stop_at: int | None = None):
        self.info = PolicyInfo(kind="scripted", name="scripted")
        self.stop_at = stop_at
        self.asked: list[int] = []  # each request's step index

    def act(self, inputs):
        decisions = []
        for inp in inputs:
            step = len(inp.history)
            if self.stop_at is not None and step >= self.stop_at:
                raise RuntimeError("stopped")
            self.asked.append(step)
            admissible = sorted(inp.admissible_actions)
            decisions.append(Decision(action=admissible[(7 * step + 3) % len(admissible)]))
        return decisions


def play(policy, task, store, journal, max_steps=12):
    return asyncio.run(collect_async(policy, "household", plan_episodes([task], 1), store, workers=1, flush_every=1,
                                     max_steps=max_steps, journal=journal))


@pytest.fixture
def task():
    return load_split("valid_unseen")[0]


def test_a_stopped_episode_resumes_after_its_last_journaled_step_and_ends_as_an_unbroken_one(task, tmp_path):
    unbroken = MemoryStore()
    play(Scripted(), task, unbroken, None)
    (reference,) = unbroken.items.values()
    assert reference.num_steps == 12

    store, journal = MemoryStore(), tmp_path / "journal"
    summary = play(Scripted(stop_at=4), task, store, journal)
    assert summary.failures and not store.items  # the episode did not finish ...
    (path,) = journal.glob("*.jsonl")  # ... but its first four steps are journaled
    assert path.stem == reference.trajectory_id and len(path.read_text().splitlines()) == 4

    again = Scripted()
    summary = play(again, task, store, journal)
    assert not summary.failures and again.asked == list(range(4, reference.num_steps))  # steps 0-3 not asked
    (resumed,) = store.items.values()
    assert [(s.action, s.next_observation) for s in resumed.steps] == [
        (s.action, s.next_observation) for s in reference.steps]
    assert resumed.trajectory_id == reference.trajectory_id
    assert not list(journal.glob("*.jsonl"))  # stored: its journal is gone


def test_a_torn_last_line_is_dropped_and_a_journal_that_does_not_replay_starts_over(task, tmp_path, caplog):
    store, journal = MemoryStore(), tmp_path / "journal"
    play(Scripted(stop_at=3), task, store, journal)
    (path,) = journal.glob("*.jsonl")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines) + '\n{"step": {"ind')  # killed while writing step 3
    again = Scripted()
    play(again, task, store, journal)
    assert again.asked[0] == 3  # the three whole steps were kept

    store = MemoryStore()
    play(Scripted(stop_at=3), task, store, journal)
    (path,) = journal.glob("*.jsonl")
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    entries[1]["step"]["next_observation"] = "You arrive somewhere else."  # the environment changed since
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    again = Scripted()
    with caplog.at_level(logging.WARNING, logger="agentkd.agents.journal"):
        play(again, task, store, journal)
    assert again.asked[0] == 0 and "gives another observation" in caplog.text  # started over
    (trajectory,) = store.items.values()
    assert [s.index for s in trajectory.steps] == list(range(12))


def test_a_journal_whose_episode_had_ended_finishes_without_asking_the_policy(task, tmp_path):
    store, journal = MemoryStore(), tmp_path / "journal"
    play(Scripted(stop_at=3), task, store, journal)
    again = Scripted()
    summary = play(again, task, store, journal, max_steps=3)  # the three journaled steps are all it may take
    assert again.asked == [] and summary.played == 1
    (trajectory,) = store.items.values()
    assert trajectory.num_steps == 3
