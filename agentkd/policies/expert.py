"""The environment's own expert as a policy (the teacher for household collection)."""

from __future__ import annotations

import time

from agentkd.schema import PolicyInfo

from .base import Decision, PolicyInput


class ExpertPolicy:
    """Asks each episode's environment for its expert (thought, action)."""

    def __init__(self, env_name: str = "household"):
        self.info = PolicyInfo(kind="expert", name=f"{env_name}-expert")

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
            decisions.append(Decision(action=action, thought=thought, latency_s=time.perf_counter() - start))
        return decisions
