"""One distillation pass over a store: extract or mine, add with merging, credit, prune.

This is what ``agentkd distill principles`` runs. It reads the store's non-evaluation trajectories
(evaluation episodes never teach: they are the test), turns them into candidate principles — with
the offline miner, or with a chat model when one is given — and adds them (updating re-mined ones,
merging near-duplicates). Then it credits every stored episode that showed principles, evaluation
episodes included (shown is shown; each episode is credited once), and prunes what kept failing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentkd.errors import AgentKDError

from .lifecycle import DEFAULT_THRESHOLD, AddReport, CreditReport, add_principles, credit, prune
from .mine import MinerConfig, mine_principles

__all__ = ["DistillReport", "NoTrajectoriesError", "distill_principles"]


class NoTrajectoriesError(AgentKDError, ValueError):
    """The store has no trajectories to distil under the given filters."""


@dataclass
class DistillReport:
    trajectories: int
    candidates: int
    source: str  # "miner" or the chat model's name
    added: AddReport
    credited: CreditReport
    pruned: list[str] = field(default_factory=list)
    extraction_failures: list[tuple[str, str]] = field(default_factory=list)


def distill_principles(
    store: Any,
    *,
    env: str | None = None,
    split: str | None = None,
    policy_kind: str | None = None,
    model: Any = None,
    judge: bool = False,
    threshold: float = DEFAULT_THRESHOLD,
    miner: MinerConfig | None = None,
    per_episode: int = 2,
    max_episodes: int | None = None,
    prune_below: float = 0.3,
    min_usage: int = 5,
    on_stage: Callable[[str], None] | None = None,
) -> DistillReport:
    """Distil the store's trajectories into principles, then credit and prune (see the module docstring).

    Args:
        env, split, policy_kind: which trajectories to distil (all non-evaluation ones by default).
        model: a LangChain chat model for extraction; ``None`` runs the offline miner.
        judge: ask ``model`` to confirm each near-duplicate merge.
        threshold: cosine similarity at which two free-text principles merge.
        max_episodes: distil at most this many trajectories (the first ones the store returns).
        prune_below, min_usage: prune principles used ``min_usage`` times whose score is below ``prune_below``.
    """
    stage = on_stage or (lambda text: None)
    filters = {key: value for key, value in {"env": env, "split": split, "policy_kind": policy_kind}.items()
               if value is not None}
    stage("reading trajectories")
    trajectories = []
    for traj in store.iterate(evaluation=False, **filters):
        trajectories.append(traj)
        if max_episodes is not None and len(trajectories) >= max_episodes:
            break
    if not trajectories:
        shown = ", ".join(f"{k}={v}" for k, v in filters.items()) or "any"
        raise NoTrajectoriesError(
            f"the store at {store.location} has no (non-evaluation) trajectories for {shown}; record some first, "
            "e.g. `agentkd collect --env household --store PATH`")
    failures: list[tuple[str, str]] = []
    if model is None:
        stage(f"mining {len(trajectories)} trajectories")
        candidates, source = mine_principles(trajectories, miner), "miner"
    else:
        from .extract import chat_model_name, extract_principles

        stage(f"extracting principles from {len(trajectories)} trajectories")
        extracted = extract_principles(model, trajectories, per_episode=per_episode)
        candidates, failures, source = extracted.principles, extracted.failed, chat_model_name(model)
    stage(f"adding {len(candidates)} candidates")
    judge_fn = None
    if judge and model is not None:
        from .extract import model_judge

        judge_fn = model_judge(model)
    added = add_principles(store, candidates, threshold=threshold, judge=judge_fn)
    stage("crediting episodes that showed principles")
    credited = credit(store, store.iterate(**({"env": env} if env else {})))
    pruned = prune(store, threshold=prune_below, min_usage=min_usage, **({"env": env} if env else {}))
    return DistillReport(trajectories=len(trajectories), candidates=len(candidates), source=source, added=added,
                         credited=credited, pruned=[p.principle_id for p in pruned], extraction_failures=failures)
