"""The cascade: the student acts, and defers a step to the teacher when its samples disagree.

Agreement is the share of the k samples that voted for the chosen action (invalid samples count
against it). Below ``threshold`` the step goes to the teacher — the environment's expert or any
chat model — and is marked ``deferred``; the student's candidates stay in the record. A step whose
action the episode already took from the same observation (:mod:`agentkd.replay.loops`: the student
is going in circles, where its samples agree most) is deferred too, unless ``revisits=False``; each
deferred step records why (``info["deferred_for"]``: ``"agreement"`` or ``"revisit"``).

Cost per step: the student's tokens at the student's price, plus, for a deferred step, the
teacher's. A chat-model teacher reports its own tokens; the expert is priced as a chat teacher
would be on the same step: the student's prompt plus ``teacher_reply_tokens``. Prices are USD per
1M (input, output) tokens; the defaults are assumptions — a hosted sub-1B model for the student,
GPT-4o list prices for the teacher — to be replaced with your own (:mod:`agentkd.policies.pricing`).
"""

from __future__ import annotations

from typing import Any

from agentkd.envs import is_code
from agentkd.policies.base import Decision, PolicyInput
from agentkd.policies.pricing import DEFAULT_STUDENT_PRICE, DEFAULT_TEACHER_PRICE, token_cost
from agentkd.policies.prompt import format_step
from agentkd.replay.loops import action_key, tried_here
from agentkd.schema import PolicyInfo

# The prices and token_cost live in agentkd.policies.pricing; re-exported here under their old names.
__all__ = ["DEFAULT_STUDENT_PRICE", "DEFAULT_TEACHER_PRICE", "CascadePolicy", "token_cost"]


class CascadePolicy:
    """Student first, teacher when the student's samples agree less than ``threshold``.

    With ``threshold=0`` and ``revisits=False`` it never defers (the student alone, priced); with
    ``threshold`` above 1 it always defers (the teacher alone, priced the same way).
    """

    def __init__(self, student: Any, teacher: Any, threshold: float, *, revisits: bool = True,
                 student_price: tuple[float, float] = DEFAULT_STUDENT_PRICE,
                 teacher_price: tuple[float, float] = DEFAULT_TEACHER_PRICE, teacher_reply_tokens: int = 48) -> None:
        self.student, self.teacher, self.threshold = student, teacher, threshold
        self.revisits = revisits
        self.student_price, self.teacher_price = student_price, teacher_price
        self.teacher_reply_tokens = teacher_reply_tokens
        self.info = PolicyInfo(kind="cascade", name=f"{student.info.name} > {teacher.info.name}",
                               params={**student.info.params, "threshold": threshold, "revisits": revisits,
                                       "teacher": f"{teacher.info.kind}:{teacher.info.name}"})

    def act(self, inputs: list[PolicyInput]) -> list[Decision]:
        decisions = self.student.act(inputs)
        why = {}
        for i, (inp, d) in enumerate(zip(inputs, decisions, strict=True)):
            if d.info.get("agreement", 0.0) < self.threshold:
                why[i] = "agreement"
            elif self.revisits and d.action and action_key(d.action) in tried_here(inp):
                why[i] = "revisit"
        unsure = list(why)
        if unsure:
            answers = self.teacher.act([inputs[i] for i in unsure])
            for i, answer in zip(unsure, answers, strict=True):
                own = decisions[i]
                teacher_in = answer.prompt_tokens or own.prompt_tokens
                teacher_out = answer.completion_tokens or self.teacher_reply_tokens
                decisions[i] = Decision(
                    action=answer.action, thought=answer.thought,
                    raw_output=answer.raw_output or format_step(answer.thought, answer.action,
                                                               is_code(inputs[i].task.env)),
                    valid=answer.valid, error=answer.error, candidates=own.candidates, deferred=True,
                    prompt_tokens=own.prompt_tokens, completion_tokens=own.completion_tokens,
                    latency_s=own.latency_s + answer.latency_s,
                    info={**own.info, "deferred_for": why[i], "teacher_prompt_tokens": teacher_in,
                          "teacher_completion_tokens": teacher_out},
                )
        return decisions

    def cost_usd(self, decision: Decision) -> float:
        cost = token_cost(decision.prompt_tokens, decision.completion_tokens, self.student_price)
        if decision.deferred:
            cost += token_cost(decision.info.get("teacher_prompt_tokens", 0),
                               decision.info.get("teacher_completion_tokens", 0), self.teacher_price)
        return cost
