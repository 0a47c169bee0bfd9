"""DAgger: the student plays, the teacher labels every state, corrections learnt and mistakes kept but masked."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from agentkd.agents import play_episode
from agentkd.cli import app
from agentkd.distill.datasets import is_mistake, trajectory_messages
from agentkd.errors import ConfigError
from agentkd.policies.base import Decision, PolicyInput
from agentkd.policies.expert import ExpertPolicy
from agentkd.replay.dagger import DaggerPolicy
from agentkd.schema import PolicyInfo
from environments.household import HouseholdEnv, load_split


class Wanderer:
    """A student that always goes to the first place it is not at (it never picks anything up)."""

    info = PolicyInfo(kind="scripted", name="wanderer", params={"samples": 1})

    def act(self, inputs: list[PolicyInput]) -> list[Decision]:
        return [Decision(action=sorted(a for a in inp.admissible_actions if a.startswith("go to "))[0],
                         thought="Somewhere else.", raw_output="Thought: Somewhere else.", prompt_tokens=10,
                         completion_tokens=3) for inp in inputs]


TASK = load_split("valid_unseen")[1]


def _play(beta: float, max_steps: int = 50):
    return play_episode(HouseholdEnv(), DaggerPolicy(Wanderer(), ExpertPolicy(), beta=beta), TASK, max_steps=max_steps)


def test_with_beta_one_the_teacher_plays_and_the_student_is_heard_at_every_step():
    expert = play_episode(HouseholdEnv(), ExpertPolicy(), TASK)
    dagger = _play(1.0)
    assert dagger.success and [s.action for s in dagger.steps] == [s.action for s in expert.steps]
    assert dagger.policy.kind == "dagger" and dagger.policy.params["beta"] == 1.0
    assert not any(is_mistake(s) for s in dagger.steps)
    assert all(s.info["student_action"].startswith("go to ") for s in dagger.steps)
    corrected = [s for s in dagger.steps if s.info.get("corrected")]
    assert corrected and all(s.info["student_action"] != s.action for s in corrected)
    assert all(s.prompt_tokens == 10 for s in dagger.steps)  # the student's tokens are counted


def test_with_beta_zero_the_student_plays_and_every_wrong_step_carries_its_label():
    dagger = _play(0.0, max_steps=10)
    assert not dagger.success and len(dagger.steps) == 10
    wrong = [s for s in dagger.steps if is_mistake(s)]
    assert wrong and all(s.action == s.info["student_action"] != s.info["expert_action"] for s in wrong)
    agreed = [s for s in dagger.steps if not is_mistake(s)]
    assert all(s.action == s.info["student_action"] and not s.info.get("corrected") for s in agreed)


def test_a_mixed_episode_is_won_from_the_students_states_and_trains_only_the_teachers_moves():
    dagger = _play(0.5)
    assert dagger.success  # the corrections get it out of the student's wandering
    wrong = [s for s in dagger.steps if is_mistake(s)]
    corrected = [s for s in dagger.steps if s.info.get("corrected")]
    assert wrong and corrected  # both kinds of disagreement happen at beta 0.5
    assert [s.action for s in _play(0.5).steps] == [s.action for s in dagger.steps]  # same run, same episode
    assistant = [m for m in trajectory_messages(dagger) if m["role"] == "assistant"]
    assert [m.get("train") for m in assistant] == [False if is_mistake(s) else None for s in dagger.steps]
    assert all("Somewhere else." in m["content"] for m, s in zip(assistant, dagger.steps, strict=True)
               if is_mistake(s))


def test_beta_outside_zero_to_one_is_refused():
    with pytest.raises(ConfigError, match="beta"):
        DaggerPolicy(Wanderer(), ExpertPolicy(), beta=1.5)


def test_collect_dagger_records_the_students_episodes_labelled(tmp_path, model_dir):
    from agentkd.store import ExperienceStore

    store = str(tmp_path / "store")
    result = CliRunner().invoke(app, ["collect", "--split", "valid_unseen", "--episodes", "2", "--max-steps", "4",
                                      "--dagger", str(model_dir), "--beta", "0.5", "--store", store,
                                      "--task-types", "pick_two_obj_and_place, look_at_obj_in_light"])
    assert result.exit_code == 0, result.output
    trajectories = list(ExperienceStore(store).iterate())
    assert len(trajectories) == 2 and {t.policy.kind for t in trajectories} == {"dagger"}
    assert {t.task_type for t in trajectories} <= {"pick_two_obj_and_place", "look_at_obj_in_light"}
    params = trajectories[0].policy.params
    assert params["constrained"] and params["noloop"] and params["teacher"] == "expert:household-expert"
    assert all("student_action" in s.info for t in trajectories for s in t.steps)

    for bad in (["--dagger-config", "sc@4+icd"], ["--mistake-rate", "0.1"], ["--task-types", "pick_three"]):
        result = CliRunner().invoke(app, ["collect", "--split", "valid_unseen", "--episodes", "1",
                                          "--dagger", str(model_dir), "--store", store, *bad])
        assert result.exit_code == 2 and "--" in result.output and "Traceback" not in result.output
