"""Principles at inference: retrieve the most useful ones for each step and show them to any policy.

:class:`PrincipleRetriever` queries the store with the task's goal and the current observation,
among the active principles of the environment that apply to the task's type (or to every type),
ranks the nearest by similarity × score — relevant *and* proven — and keeps the best ``k`` that fit
the token budget. :class:`PrinciplesPolicy` wraps any policy (teacher, student, the household
explorer): it puts the retrieved principles into each input's ``principles`` (the prompt's system
message) and ``principle_records`` (their data, for agents that read it), and records which ids
were shown — and which were retrieved but left out — in the decision's ``info``, which the
environment agent copies into the step. :func:`~agentkd.distill.principles.lifecycle.credit`
credits exactly the shown ones.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from agentkd.errors import EmptyDatasetError
from agentkd.policies.base import Decision, PolicyInput
from agentkd.schema import PolicyInfo, Principle

from .lifecycle import SHOWN_KEY

__all__ = ["RETRIEVED_KEY", "PrincipleRetriever", "PrinciplesPolicy", "Retrieved"]

#: ``Decision.info`` key of the retrieved ids that the budget or ``k`` left out of the prompt.
RETRIEVED_KEY = "principles_retrieved"
_OBSERVATION_CHARS = 300  # of the current observation in a query: the goal should dominate it


@dataclass
class Retrieved:
    """Principles for one input: the ones to show and the ones ranked but left out."""

    shown: list[Principle] = field(default_factory=list)
    left_out: list[Principle] = field(default_factory=list)
    ranking: list[tuple[str, float, float]] = field(default_factory=list)  # (id, similarity, similarity × score)


class PrincipleRetriever:
    """Top-``k`` principles by similarity × score for each policy input, within a token budget.

    Args:
        store: an :class:`~agentkd.store.ExperienceStore` holding principles.
        env: environment whose principles are used.
        k: most principles shown per step.
        max_tokens: token budget of the shown principles (measured with ``count_tokens``).
        count_tokens: counts a text's tokens (default: 4 characters per token).
        candidates: nearest principles ranked per query (default ``4 * k``).
    """

    def __init__(self, store: Any, env: str = "household", *, k: int = 3, max_tokens: int = 200,
                 count_tokens: Callable[[str], int] | None = None, candidates: int | None = None) -> None:
        self.store, self.env, self.k, self.max_tokens = store, env, k, max_tokens
        self.count_tokens = count_tokens or (lambda text: len(text) // 4 + 1)
        self.candidates = candidates or 4 * k
        if store.count_principles(env=env, status="active") == 0:
            raise EmptyDatasetError(
                f"the store at {store.location} has no active principles for env={env}, so there is nothing to "
                f"show (+principles). Distil them first: `agentkd distill principles --env {env} --store "
                f"{store.location}`."
            )

    def describe(self) -> dict[str, Any]:
        return {"k": self.k, "max_tokens": self.max_tokens}

    @staticmethod
    def query(inp: PolicyInput) -> str:
        """What is embedded for one input: the goal and the start of the current observation."""
        observation = " ".join(inp.observation.split())[:_OBSERVATION_CHARS]
        return f"{inp.task.goal.strip()}\n{observation}"

    def retrieve(self, inputs: list[PolicyInput]) -> list[Retrieved]:
        """Principles per input, best first: one embedding call and one query per task type in the batch."""
        by_type: dict[str, list[int]] = defaultdict(list)
        for i, inp in enumerate(inputs):
            by_type[inp.task.task_type].append(i)
        results = [Retrieved() for _ in inputs]
        for task_type, members in by_type.items():
            hits = self.store.query_principles_many([self.query(inputs[i]) for i in members], k=self.candidates,
                                                    env=self.env, task_type=[task_type, ""], status="active")
            for i, found in zip(members, hits, strict=True):
                ranked = sorted(found, key=lambda h: max(h.similarity, 0.0) * h.principle.score, reverse=True)
                out = results[i]
                budget = self.max_tokens
                for hit in ranked:
                    out.ranking.append((hit.principle.principle_id, hit.similarity,
                                        max(hit.similarity, 0.0) * hit.principle.score))
                    cost = self.count_tokens(hit.principle.text)
                    if len(out.shown) < self.k and cost <= budget:
                        out.shown.append(hit.principle)
                        budget -= cost
                    else:
                        out.left_out.append(hit.principle)
        return results


class PrinciplesPolicy:
    """Any policy, shown the retrieved principles at every step; the shown ids go into the step's info."""

    def __init__(self, policy: Any, retriever: PrincipleRetriever) -> None:
        self.policy, self.retriever = policy, retriever
        self.info = PolicyInfo(kind=policy.info.kind, name=policy.info.name,
                               params={**policy.info.params, "principles": retriever.describe()})
        if callable(price := getattr(policy, "cost_usd", None)):  # model policies price their own calls
            self.cost_usd = price

    def act(self, inputs: list[PolicyInput]) -> list[Decision]:
        found = self.retriever.retrieve(inputs)
        shown = [
            replace(inp, principles=[*inp.principles, *(p.text for p in got.shown)],
                    principle_records=[*inp.principle_records, *got.shown])
            for inp, got in zip(inputs, found, strict=True)
        ]
        decisions = self.policy.act(shown)
        for decision, got in zip(decisions, found, strict=True):
            decision.info = {**decision.info, SHOWN_KEY: [p.principle_id for p in got.shown],
                             RETRIEVED_KEY: [p.principle_id for p in got.left_out]}
        return decisions
