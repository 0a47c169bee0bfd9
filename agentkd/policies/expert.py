"""The environment's own expert as a policy (the teacher for household collection).

With ``mistake_rate`` the expert, now and then, takes a wrong admissible action on purpose and then
recovers from it (its next moves are again the expert's, from wherever the mistake left it). The
expert's data otherwise never contains a mistake, so a student trained on it has never seen one
corrected. Such steps are marked ``info["mistake"]``: prompts show them, training never learns them
(:func:`agentkd.distill.datasets.trajectory_messages`), and the trajectories have their own policy
kind, ``noisy_expert``, so in-context demonstrations and REDI positives stay clean.
"""

from __future__ import annotations

import random
import time

from agentkd.schema import PolicyInfo

from .base import Decision, PolicyInput

#: The step-info key that marks a deliberate mistake (read by agentkd.distill.datasets.is_mistake).
MISTAKE = "mistake"


class ExpertPolicy:
    """Asks each episode's environment for its expert (thought, action).

    Args:
        env_name: the environment (names the policy).
        mistake_rate: probability, per step, of a wrong admissible action instead of the expert's.
        seed: seeds where the mistakes fall (deterministic per task, step and seed).
    """

    def __init__(self, env_name: str = "household", mistake_rate: float = 0.0, seed: int = 0):
        if not 0.0 <= mistake_rate < 1.0:
            raise ValueError(f"mistake_rate must be in [0, 1), not {mistake_rate}")
        self.mistake_rate = mistake_rate
        self.seed = seed
        if mistake_rate:
            self.info = PolicyInfo(kind="noisy_expert", name=f"{env_name}-expert",
                                   params={"mistake_rate": mistake_rate, "seed": seed})
        else:
            self.info = PolicyInfo(kind="expert", name=f"{env_name}-expert")

    def _mistake(self, inp: PolicyInput, action: str) -> str | None:
        """A wrong admissible action for this step, or None (no mistake here)."""
        if not self.mistake_rate or not inp.admissible_actions:
            return None
        rng = random.Random(f"{self.seed}:{inp.task.task_id}:{len(inp.history)}")
        if rng.random() >= self.mistake_rate:
            return None
        others = [a for a in inp.admissible_actions if a != action]
        return rng.choice(others) if others else None

    def act(self, inputs: list[PolicyInput]) -> list[Decision]:
        decisions = []
        for inp in inputs:
            start = time.perf_counter()
            expert = getattr(inp.env, "expert_action", None)
            choice = expert() if expert is not None else None
            if choice is None:
                decisions.append(Decision(action="", valid=False, error="the environment has no expert move here"))
                continue
            thought, action = choice
            wrong = self._mistake(inp, action)
            info = {MISTAKE: True, "expert_action": action} if wrong is not None else {}
            decisions.append(Decision(action=wrong or action, thought=thought, latency_s=time.perf_counter() - start,
                                      info=info))
        return decisions
