"""In-context distillation: the teacher's most similar recorded steps, shown to the student at every step.

The query is what the store embeds for its own steps (:func:`agentkd.store.step_context`: goal,
recent actions and results, current observation), so both sides have the same shape. Hits come
from successful teacher trajectories of the same environment and task type, never from
evaluation runs, and are added most similar first until the token budget is spent.

Training builds its ``--icd`` prompts with these demonstrations and replay shows them the same way, so
they live here, below both (:mod:`agentkd.replay.icd` re-exports them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from agentkd.envs import is_code
from agentkd.errors import EmptyDatasetError
from agentkd.policies.base import PolicyInput
from agentkd.policies.prompt import format_step

__all__ = ["DemoRetriever", "with_demos"]

_QUERY_BATCH = 128  # queries per store call (building training prompts asks thousands at once)


def with_demos(messages: list[dict[str, str]], demos: list[str] | None) -> list[dict[str, str]]:
    """The student's messages with the teacher's retrieved steps in front of the current turn."""
    if not demos:
        return messages
    shown = "\n\n".join(demos)
    return [*messages[:-1], {"role": "user", "content": f"Similar steps by the teacher:\n{shown}\n\n"
                                                       f"{messages[-1]['content']}"}]


class DemoRetriever:
    """Retrieves teacher demonstrations for a batch of policy inputs.

    Args:
        store: an :class:`~agentkd.store.ExperienceStore` holding teacher trajectories.
        env: environment whose steps are used.
        k: most demonstrations per step.
        max_tokens: token budget of the shown demonstrations (measured with ``count_tokens``).
        count_tokens: counts a text's tokens (default: 4 characters per token).
        teacher_kind: policy kind of the teacher's trajectories (``expert``, ``chat_model``).
        split: the split demonstrations come from (``train``): never the evaluated one, where the
            cascade stores the teacher's steps on the very tasks being evaluated.
    """

    def __init__(self, store: Any, env: str = "household", *, k: int = 3, max_tokens: int = 300,
                 count_tokens: Callable[[str], int] | None = None, teacher_kind: str = "expert",
                 split: str = "train") -> None:
        self.store, self.env, self.k, self.max_tokens = store, env, k, max_tokens
        self.count_tokens = count_tokens or (lambda text: len(text) // 4 + 1)
        self.filters = {"env": env, "split": split, "policy_kind": teacher_kind, "success": True,
                        "evaluation": False}
        if store.count_steps(**self.filters) == 0:
            raise EmptyDatasetError(
                f"the store at {store.location} has no successful {teacher_kind} steps for env={env} split={split}, so "
                f"there is nothing to show the student (--icd). Record teacher trajectories first: `agentkd collect "
                f"--env {env} --split {split} --teacher expert --store {store.location}`."
            )

    def describe(self) -> dict[str, Any]:
        return {"k": self.k, "max_tokens": self.max_tokens, "teacher_kind": self.filters["policy_kind"],
                "split": self.filters["split"]}

    def retrieve(self, inputs: list[PolicyInput], skip: Callable[[PolicyInput, Any], bool] | None = None,
                 ) -> list[list[str]]:
        """Demonstration texts per input (most similar first, within the budget).

        ``skip(input, hit)`` leaves a hit out — e.g. steps of the input's own task when building
        training prompts, where showing the answer would teach copying it rather than using
        similar cases (a few extra hits are fetched to make up for skipped ones).
        """
        from agentkd.store import step_context

        by_type: dict[str, list[int]] = defaultdict(list)
        for i, inp in enumerate(inputs):
            by_type[inp.task.task_type].append(i)
        shown: list[list[str]] = [[] for _ in inputs]
        code = is_code(self.env)
        for task_type, members in by_type.items():
            queries = [step_context(inputs[i].task.goal, inputs[i].history, inputs[i].observation) for i in members]
            extra = 2 * self.k if skip is not None else 0
            hits = []
            for start in range(0, len(queries), _QUERY_BATCH):  # Chroma caps the variables of one query
                hits += self.store.query_steps_many(queries[start:start + _QUERY_BATCH], k=self.k + extra,
                                                    task_type=task_type, **self.filters)
            for i, found in zip(members, hits, strict=True):
                budget = self.max_tokens
                if skip is not None:
                    found = [hit for hit in found if not skip(inputs[i], hit)][: self.k]
                for hit in found:
                    text = f"{hit.document}\n{format_step(hit.thought, hit.action, code)}"
                    cost = self.count_tokens(text)
                    if cost > budget:
                        break
                    shown[i].append(text)
                    budget -= cost
        return shown
