"""Household expert episodes as benchmark (and test) data: real steps, deterministic, no model needed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from agentkd.schema import Trajectory, trajectory_id

__all__ = ["expert_trajectories", "play_expert"]


def play_expert(task: Any, seed: int = 0, env: Any = None) -> Trajectory:
    """Play the household expert on ``task`` through the recording agent graph; the finished trajectory."""
    from agentkd.agents import play_episode
    from agentkd.policies.expert import ExpertPolicy
    from environments.household import HouseholdEnv

    return play_episode(env or HouseholdEnv(), ExpertPolicy(), task, seed=seed)


def expert_trajectories(n_steps: int, split: str = "train") -> Iterator[Trajectory]:
    """Expert trajectories over the tasks of ``split`` until ``n_steps`` steps were yielded.

    The first pass plays every task once (seed 0); later passes reuse those episodes under the
    ids of seeds 1, 2, ... (the expert is deterministic, so replaying would give the same steps).
    """
    from environments.household import HouseholdEnv, load_split

    env = HouseholdEnv()
    played: list[Trajectory] = []
    produced = 0
    for task in load_split(split):
        traj = play_expert(task, seed=0, env=env)
        played.append(traj)
        yield traj
        produced += traj.num_steps
        if produced >= n_steps:
            return
    seed = 1
    while played:
        for base in played:
            copy = base.model_copy(deep=True)
            copy.seed = seed
            copy.trajectory_id = trajectory_id(base.task_id, base.policy, seed)
            yield copy
            produced += copy.num_steps
            if produced >= n_steps:
                return
        seed += 1
