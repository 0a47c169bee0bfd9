"""DAgger: the student drives, the teacher labels every state the student reaches.

A student trained on the expert's episodes only ever saw the expert's states; once it errs it is
somewhere its data never went, and it errs again (Ross et al., 2011). Here the student plays (the
way it is deployed: greedy, constrained, avoiding loops) and the teacher answers every state too.
Where the two agree the step is the teacher's. Where they disagree, the teacher's action is taken
with probability ``beta`` (a correction, learnt: the right move in a state the student reached), and
the student's otherwise: the episode goes on from the student's mistake, which is marked
``info["mistake"]`` like the expert's deliberate ones, so prompts show it and training never learns
it, and the teacher's recovery from there is learnt. Every step records the student's own action
(``info["student_action"]``) and, on a mistake, the teacher's (``info["expert_action"]``).

Trajectories have their own policy kind, ``dagger``; those with a mistake are never REDI positives
or in-context demonstrations (:func:`agentkd.distill.datasets.is_mistake`).
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from agentkd.errors import ConfigError
from agentkd.policies.base import Decision, PolicyInput
from agentkd.policies.expert import MISTAKE
from agentkd.replay.loops import action_key
from agentkd.schema import PolicyInfo

__all__ = ["DaggerPolicy"]


class DaggerPolicy:
    """The student's episodes, labelled by the teacher; ``beta``: the share of disagreements the teacher takes.

    ``beta=1`` replays the teacher's own episodes (with the student's opinion recorded at every step);
    ``beta=0`` the student's (every wrong step marked, its correct label beside it).
    """

    def __init__(self, student: Any, teacher: Any, beta: float = 0.5, seed: int = 0) -> None:
        if not 0.0 <= beta <= 1.0:
            raise ConfigError(f"beta must be in [0, 1], not {beta}")
        self.student, self.teacher, self.beta, self.seed = student, teacher, beta, seed
        self.info = PolicyInfo(kind="dagger", name=f"{student.info.name} > {teacher.info.name}",
                               params={**student.info.params, "beta": beta, "seed": seed,
                                       "teacher": f"{teacher.info.kind}:{teacher.info.name}"})

    def _teacher_takes(self, inp: PolicyInput) -> bool:
        rng = random.Random(f"{self.seed}:{inp.task.task_id}:{len(inp.history)}")  # same run, same episodes
        return rng.random() < self.beta

    def act(self, inputs: list[PolicyInput]) -> list[Decision]:
        mine = self.student.act(inputs)
        labels = self.teacher.act(inputs)
        decisions = []
        for inp, student, teacher in zip(inputs, mine, labels, strict=True):
            said = student.action if student.valid else ""
            costs = {"prompt_tokens": student.prompt_tokens + teacher.prompt_tokens,
                     "completion_tokens": student.completion_tokens + teacher.completion_tokens,
                     "latency_s": student.latency_s + teacher.latency_s}
            agreed = bool(said) and action_key(said) == action_key(teacher.action)
            if teacher.valid and (agreed or self._teacher_takes(inp)):
                info = {**teacher.info, "student_action": said, **({} if agreed else {"corrected": True})}
                decisions.append(replace(teacher, info=info, candidates=teacher.candidates or student.candidates,
                                         **costs))
            else:
                # Not learnt: a mistake, or a state the teacher could not label (then no expert_action).
                info = {**student.info, MISTAKE: True, "student_action": said,
                        **({"expert_action": teacher.action} if teacher.valid else {})}
                decisions.append(replace(student, info=info, **costs))
        return decisions
