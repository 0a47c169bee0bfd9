"""The environment's own expert as a policy (the teacher for household collection).

With ``mistake_rate`` the expert, now and then, makes a mistake on purpose and then recovers from it
(its next moves are again the expert's, from wherever the mistake left it). Half of the mistakes are
wrong admissible actions; the other half are the slips a student makes, which the environment
refuses ("Nothing happens."): its own move with a number past the last of that kind ("go to shelf 6"
in a room with four shelves) or its previous move repeated once it no longer applies. The expert's
data otherwise never contains a mistake, so a student trained on it has never seen one corrected,
and a student that has never seen "Nothing happens." repeats the refused command until the step
limit. Such steps are marked ``info["mistake"]``: prompts show them, training never learns them
(:func:`agentkd.distill.datasets.trajectory_messages`), and the trajectories have their own policy
kind, ``noisy_expert``, so in-context demonstrations and REDI positives stay clean.
"""

from __future__ import annotations

import copy
import random
import re
import time

from agentkd.errors import ConfigError
from agentkd.schema import PolicyInfo

from .base import Decision, PolicyInput
from .prompt import format_step

#: The step-info key that marks a deliberate mistake (read by agentkd.distill.datasets.is_mistake).
MISTAKE = "mistake"


class ExpertPolicy:
    """Asks each episode's environment for its expert (thought, action).

    Args:
        env_name: the environment (names the policy).
        mistake_rate: probability, per step, of a mistake (a wrong admissible action or a refused slip).
        seed: seeds where the mistakes fall (deterministic per task, step and seed).
        lookahead: slips also include the expert's own moves of the next ``lookahead`` steps, taken now.
    """

    def __init__(self, env_name: str = "household", mistake_rate: float = 0.0, seed: int = 0, lookahead: int = 0):
        if not 0.0 <= mistake_rate < 1.0:
            raise ConfigError(f"mistake_rate must be in [0, 1), not {mistake_rate}")
        if lookahead < 0 or (lookahead and not mistake_rate):
            raise ConfigError(f"lookahead {lookahead}: a count of steps >= 0, and only with a mistake rate")
        self.mistake_rate = mistake_rate
        self.seed = seed
        self.lookahead = lookahead
        if mistake_rate:
            # lookahead only when used, so that the ids of trajectories collected without it stay the same
            self.info = PolicyInfo(kind="noisy_expert", name=f"{env_name}-expert",
                                   params={"mistake_rate": mistake_rate, "seed": seed, "slips": True,
                                           **({"lookahead": lookahead} if lookahead else {})})
        else:
            self.info = PolicyInfo(kind="expert", name=f"{env_name}-expert")

    def _mistake(self, inp: PolicyInput, action: str) -> str | None:
        """A wrong action for this step (admissible, or a slip the environment refuses), or None."""
        if not self.mistake_rate or not inp.admissible_actions:
            return None
        rng = random.Random(f"{self.seed}:{inp.task.task_id}:{len(inp.history)}")
        if rng.random() >= self.mistake_rate:
            return None
        slips = _slips(inp, action) + _premature(inp, action, self.lookahead)
        if slips and rng.random() < 0.5:
            return rng.choice(slips)
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
                                      raw_output=format_step(thought, wrong) if wrong is not None else "", info=info))
        return decisions


def _slips(inp: PolicyInput, action: str) -> list[str]:
    """Inadmissible commands a student writes here: ``action`` numbered past the last of its kind, or the
    previous command repeated after it stopped applying."""
    admissible = set(inp.admissible_actions or [])
    slips = []
    numbered = list(re.finditer(r"([a-z]+) (\d+)", action))
    if numbered:
        last = numbered[-1]
        known = [int(n) for a in admissible for n in re.findall(rf"\b{last.group(1)} (\d+)", a)]
        beyond = max(known + [int(last.group(2))]) + 1
        slips.append(f"{action[:last.start(2)]}{beyond}{action[last.end(2):]}")
    if inp.history and inp.history[-1].action:
        slips.append(inp.history[-1].action)
    return [s for s in dict.fromkeys(slips) if s not in admissible and s != action]


def _premature(inp: PolicyInput, action: str, lookahead: int) -> list[str]:
    """The expert's own moves of the next ``lookahead`` steps that the environment refuses now (the student
    acting on what it has not reached), from the expert played forward on a copy of the environment."""
    if not lookahead or inp.env is None:
        return []
    try:
        ahead = copy.deepcopy(inp.env)
    except Exception:  # an environment holding a process or a socket (the official engine): none
        return []
    admissible = set(inp.admissible_actions or [])
    moves, command = [], action
    for _ in range(lookahead):
        _, _, done, _ = ahead.step(command)
        choice = None if done else ahead.expert_action()
        if choice is None:
            break
        command = choice[1]
        moves.append(command)
    return [m for m in dict.fromkeys(moves) if m not in admissible and m != action]
