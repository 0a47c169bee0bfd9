"""Tests for the record schema (agentkd.schema) and the environment protocol (agentkd.env)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from agentkd.env import Env, has_expert
from agentkd.schema import (
    SCHEMA_VERSION,
    Candidate,
    PolicyInfo,
    Principle,
    SchemaVersionError,
    Step,
    Task,
    Trajectory,
    principle_id,
    trajectory_id,
)


@pytest.fixture
def task() -> Task:
    return Task(
        task_id="household/valid_seen/0007",
        env="household",
        split="valid_seen",
        task_type="pick_and_place",
        goal="put a clean mug in the coffeemachine",
        params={"layout": 3, "objects": ["mug", "sink"], "seed": 11},
        index=7,
    )


@pytest.fixture
def policy() -> PolicyInfo:
    return PolicyInfo(kind="hf_model", name="tiny-qwen", params={"temperature": 0.7, "n": 5})


def _trajectory(task: Task, policy: PolicyInfo) -> Trajectory:
    traj = Trajectory.start(task, policy, seed=3, run="unit")
    traj.steps.append(
        Step(
            index=0,
            observation="You are in the kitchen.",
            thought="The mug is probably on the counter.",
            action="go to countertop 1",
            raw_output="Think: The mug is probably on the counter.\nAct: go to countertop 1",
            candidates=[
                Candidate(action="go to countertop 1", raw="Act: go to countertop 1", votes=3, logprob=-0.4),
                Candidate(action="fly away", raw="Act: fly away", valid=False, votes=0),
            ],
            next_observation="On the countertop 1, you see a mug 1.",
            admissible_actions=["go to countertop 1", "look"],
            prompt_tokens=120,
            completion_tokens=14,
            latency_s=0.25,
            info={"won": False},
        )
    )
    traj.steps.append(
        Step(
            index=1,
            observation="On the countertop 1, you see a mug 1.",
            action="take mug 1 from countertop 1",
            deferred=True,
            next_observation="You pick up the mug 1.",
            reward=1.0,
            done=True,
            prompt_tokens=150,
            completion_tokens=9,
        )
    )
    return traj


# --- round trip -------------------------------------------------------------------------------


def test_trajectory_json_round_trip(task: Task, policy: PolicyInfo) -> None:
    traj = _trajectory(task, policy).finish(success=True)
    restored = Trajectory.from_json(traj.to_json())
    assert restored == traj
    assert restored.steps[0].candidates[1].valid is False
    assert restored.steps[1].deferred is True
    assert restored.started_at.tzinfo is not None
    assert restored.metadata == {"run": "unit"}


def test_task_and_principle_round_trip(task: Task) -> None:
    assert Task.from_json(task.to_json()) == task
    principle = Principle.new("Clean an object in the sink before placing it.", "guiding", "household")
    assert Principle.from_json(principle.to_json()) == principle


def test_every_record_carries_schema_version(task: Task, policy: PolicyInfo) -> None:
    data = json.loads(_trajectory(task, policy).to_json())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["policy"]["schema_version"] == SCHEMA_VERSION
    assert data["steps"][0]["candidates"][0]["schema_version"] == SCHEMA_VERSION


def test_start_fills_task_fields(task: Task, policy: PolicyInfo) -> None:
    traj = Trajectory.start(task, policy, seed=3)
    assert (traj.env, traj.task_id, traj.split, traj.task_type, traj.goal) == (
        task.env,
        task.task_id,
        task.split,
        task.task_type,
        task.goal,
    )
    assert traj.trajectory_id == trajectory_id(task.task_id, policy, 3)
    assert traj.finished_at is None
    assert traj.num_steps == 0


# --- ids --------------------------------------------------------------------------------------


def test_trajectory_id_is_deterministic(policy: PolicyInfo) -> None:
    same_policy = PolicyInfo(kind="hf_model", name="tiny-qwen", params={"n": 5, "temperature": 0.7})
    first = trajectory_id("t1", policy, 0)
    assert first == trajectory_id("t1", policy, 0)
    assert first == trajectory_id("t1", same_policy, 0)  # param order does not matter
    assert first.startswith("t1-")


@pytest.mark.parametrize(
    ("task_id", "other", "seed"),
    [
        ("t2", PolicyInfo(kind="hf_model", name="tiny-qwen", params={"temperature": 0.7, "n": 5}), 0),
        ("t1", PolicyInfo(kind="hf_model", name="tiny-qwen", params={"temperature": 0.7, "n": 5}), 1),
        ("t1", PolicyInfo(kind="hf_model", name="tiny-qwen", params={"temperature": 0.8, "n": 5}), 0),
        ("t1", PolicyInfo(kind="hf_model", name="tiny-qwen", params={"temperature": 0.7}), 0),
        ("t1", PolicyInfo(kind="hf_model", name="other-model", params={"temperature": 0.7, "n": 5}), 0),
        ("t1", PolicyInfo(kind="chat_model", name="tiny-qwen", params={"temperature": 0.7, "n": 5}), 0),
    ],
)
def test_trajectory_id_changes_with_inputs(
    policy: PolicyInfo, task_id: str, other: PolicyInfo, seed: int
) -> None:
    assert trajectory_id("t1", policy, 0) != trajectory_id(task_id, other, seed)


def test_trajectory_id_slug_is_safe() -> None:
    tid = trajectory_id("household/valid seen/0007", PolicyInfo(kind="expert", name="expert"), 0)
    assert " " not in tid and "/" not in tid


def test_principle_id_is_deterministic() -> None:
    text = "Look inside closed receptacles before searching elsewhere."
    assert principle_id(text) == principle_id(text)
    assert principle_id(text) == principle_id(
        "  look inside closed receptacles   before searching elsewhere."
    )
    assert principle_id(text) != principle_id("Always open the fridge first.")
    assert Principle.new(text, "cautionary", "household").principle_id == principle_id(text)


def test_policy_params_must_be_json(task: Task) -> None:
    with pytest.raises(ValidationError, match="JSON-serialisable"):
        PolicyInfo(kind="hf_model", name="m", params={"bad": object()})


# --- finish and score -------------------------------------------------------------------------


def test_finish_aggregates_tokens(task: Task, policy: PolicyInfo) -> None:
    traj = _trajectory(task, policy)
    assert traj.total_tokens == 0
    returned = traj.finish(success=True, reward=0.5)
    assert returned is traj
    assert traj.success is True and traj.reward == 0.5
    assert traj.prompt_tokens == 270
    assert traj.completion_tokens == 23
    assert traj.total_tokens == 293
    assert traj.num_steps == 2
    assert traj.finished_at is not None and traj.finished_at >= traj.started_at
    assert traj.wall_time_s >= 0.0


def test_finish_default_reward(task: Task, policy: PolicyInfo) -> None:
    assert _trajectory(task, policy).finish(success=True).reward == 1.0
    assert _trajectory(task, policy).finish(success=False).reward == 0.0


@pytest.mark.parametrize(("successes", "uses"), [(0, 0), (1, 1), (3, 10), (0, 4)])
def test_principle_score(successes: int, uses: int) -> None:
    principle = Principle.new("p", "guiding", "household").model_copy(
        update={"success_count": successes, "usage_count": uses}
    )
    assert principle.score == pytest.approx((successes + 1) / (uses + 2))


# --- validation -------------------------------------------------------------------------------


def test_future_schema_version_rejected(task: Task, policy: PolicyInfo) -> None:
    data = json.loads(_trajectory(task, policy).to_json())
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(SchemaVersionError) as excinfo:
        Trajectory.from_json(json.dumps(data))
    assert str(SCHEMA_VERSION + 1) in str(excinfo.value)
    assert str(SCHEMA_VERSION) in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


def test_future_schema_version_rejected_when_nested(task: Task, policy: PolicyInfo) -> None:
    data = json.loads(_trajectory(task, policy).to_json())
    data["steps"][0]["schema_version"] = SCHEMA_VERSION + 2
    with pytest.raises(SchemaVersionError):
        Trajectory.model_validate(data)
    with pytest.raises(SchemaVersionError):
        Task(**{**task.model_dump(), "schema_version": SCHEMA_VERSION + 1})


def test_timestamps_are_utc() -> None:
    naive = datetime(2024, 5, 1, 12, 0)
    plus_two = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    principle = Principle(
        principle_id="p-x", text="x", kind="guiding", env="household", created_at=naive, updated_at=plus_two
    )
    assert principle.created_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert principle.updated_at.utcoffset() == timedelta(0)
    assert principle.updated_at == principle.created_at


def test_principle_kind_is_checked() -> None:
    with pytest.raises(ValidationError):
        Principle.new("x", "neutral", "household")  # type: ignore[arg-type]


# --- env protocol -----------------------------------------------------------------------------


class _CounterEnv:
    """Smallest possible environment: done after two 'inc' actions."""

    name = "counter"

    def reset(self, task: Task) -> str:
        self.count = 0
        return f"count={self.count}; goal: {task.goal}"

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if action == "inc":
            self.count += 1
        done = self.count >= 2
        return f"count={self.count}", float(done), done, {}

    def admissible_actions(self) -> list[str] | None:
        return ["inc", "noop"]


class _ExpertCounterEnv(_CounterEnv):
    def expert_action(self) -> tuple[str, str] | None:
        return ("Increment to reach the goal.", "inc")


def test_env_protocol(task: Task) -> None:
    env = _CounterEnv()
    assert isinstance(env, Env)
    assert not isinstance(object(), Env)
    assert env.reset(task).startswith("count=0")
    assert env.step("inc") == ("count=1", 0.0, False, {})
    assert env.step("inc")[2] is True


def test_has_expert() -> None:
    assert not has_expert(_CounterEnv())
    expert_env = _ExpertCounterEnv()
    assert isinstance(expert_env, Env)
    assert has_expert(expert_env)
    assert expert_env.expert_action() == ("Increment to reach the goal.", "inc")
