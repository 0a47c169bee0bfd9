"""The lifecycle of principles in the experience store: add (merging near-duplicates), credit, prune.

* **Add** (:func:`add_principles`): a candidate with the id of a stored principle (same key, or same
  text) updates it; a free-text candidate whose cosine similarity to a stored principle of the same
  env, kind and task type is at least ``threshold`` — and that an optional judge calls the same
  lesson — is merged into it; anything else is inserted. Similarity is ``1 - distance`` of Chroma's
  cosine space, so *larger is more alike* (EvolveR compared the distance against the threshold and
  never merged anything). A merge keeps the better text (more source trajectories, then higher
  score), links all source trajectories and adds up the counts.
* **Credit** (:func:`credit`): a principle's usage and success counts change only for episodes in
  whose prompt it was shown — the ids a principles policy recorded in the steps' ``info`` under
  ``principles_shown`` (or the trajectory's ``metadata``). Retrieved but not shown is not credited,
  an episode is credited once, and credit for a merged principle goes to the one that absorbed it.
* **Prune** (:func:`prune`): a principle used at least ``min_usage`` times whose score
  (s+1)/(u+2) is below ``threshold`` is marked ``pruned``: kept in the store with its history, no
  longer retrieved.

Every change bumps the principle's version and appends a timestamped entry to its history, and is
written to the store at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from agentkd.schema import Principle, Trajectory

__all__ = ["DEFAULT_THRESHOLD", "SHOWN_KEY", "AddReport", "CreditReport", "Judge", "add_principles", "credit",
           "deduplicate", "merge", "prune", "shown_principles"]

#: Cosine similarity at or above which two free-text principles are the same lesson.
DEFAULT_THRESHOLD = 0.9
#: Where a principles policy records the ids it showed (``Step.info`` and ``Trajectory.metadata``).
SHOWN_KEY = "principles_shown"
#: Optional second opinion on a near-duplicate pair: (stored, candidate) -> same lesson?
Judge = Callable[[Principle, Principle], bool]

_MAX_MERGE_HOPS = 32  # following merged_into; a longer chain means a corrupt store


@dataclass
class AddReport:
    """What :func:`add_principles` did with each candidate (principle ids)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    merged: list[tuple[str, str, float]] = field(default_factory=list)  # (candidate id, into id, similarity)

    def summary(self) -> str:
        return (f"{len(self.added)} added, {len(self.updated)} updated, {len(self.merged)} merged into existing "
                f"ones, {len(self.unchanged)} unchanged")


@dataclass
class CreditReport:
    """What :func:`credit` did: episodes credited, per principle (ids after following merges)."""

    episodes: int = 0  # episodes that showed at least one principle and were not credited before
    skipped: int = 0  # episodes already credited
    credited: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (uses added, successes added)
    unknown: list[str] = field(default_factory=list)  # shown ids the store does not have


def _better(a: Principle, b: Principle) -> Principle:
    """The principle whose text a merge keeps: more evidence first, then a higher score."""
    return max((a, b), key=lambda p: (len(p.source_trajectories), p.score, p.usage_count))


def merge(into: Principle, other: Principle, similarity: float) -> Principle:
    """Merge ``other`` into ``into`` (in place; returns it): the better text, all sources, summed counts."""
    better = _better(into, other)
    details: dict[str, Any] = {"absorbed": other.principle_id, "absorbed_text": other.text,
                               "similarity": round(float(similarity), 6)}
    if better is other and other.text != into.text:
        details["text_before"] = into.text
        into.text = other.text
    into.source_trajectories = list(dict.fromkeys([*into.source_trajectories, *other.source_trajectories]))
    into.usage_count += other.usage_count
    into.success_count += other.success_count
    if not into.data and other.data:
        into.data = dict(other.data)
    into.record("merged", f"merged {other.principle_id} (similarity {similarity:.3f})", **details)
    return into


def _absorbed(other: Principle, into: Principle, similarity: float) -> Principle:
    other.status = "merged"
    other.merged_into = into.principle_id
    other.record("absorbed", f"merged into {into.principle_id} (similarity {similarity:.3f})",
                 into=into.principle_id, similarity=round(float(similarity), 6))
    return other


def _duplicate_of(store: Any, candidate: Principle, threshold: float, judge: Judge | None,
                  exclude: str | None = None, status: tuple[str, ...] = ("active", "pruned")
                  ) -> tuple[Principle, float] | None:
    """The stored principle the candidate duplicates (similarity >= threshold, same env/kind/task type).

    Pruned principles count by default: a lesson that did not help is not added again under new words.
    """
    if candidate.key is not None:  # structured principles are identified by their key, never by wording
        return None
    hits = store.query_principles(candidate.text, k=5, env=candidate.env, kind=candidate.kind,
                                  task_type=candidate.task_type or "", key="", status=list(status))
    for hit in hits:  # most similar first
        if hit.similarity < threshold:
            break
        if hit.principle.principle_id == exclude:
            continue
        if judge is None or judge(hit.principle, candidate):
            return hit.principle, hit.similarity
    return None


def _refresh(stored: Principle, candidate: Principle) -> bool:
    """Update a stored principle from a candidate with its id (re-mined, re-extracted); True if it changed."""
    details: dict[str, Any] = {}
    if candidate.text != stored.text:
        details["text_before"] = stored.text
        stored.text = candidate.text
    if candidate.data != stored.data:
        stored.data = dict(candidate.data)
        details["data_changed"] = True
    sources = list(dict.fromkeys([*stored.source_trajectories, *candidate.source_trajectories]))
    if len(sources) != len(stored.source_trajectories):
        details["new_sources"] = len(sources) - len(stored.source_trajectories)
        stored.source_trajectories = sources
    if not details:
        return False
    stored.record("updated", "re-distilled: " + ", ".join(sorted(details)), **details)
    return True


def _resolve(store: Any, principle: Principle) -> Principle:
    """Follow ``merged_into`` to the principle that holds a merged one's lesson now."""
    for _ in range(_MAX_MERGE_HOPS):
        if principle.status != "merged" or not principle.merged_into:
            return principle
        nxt = store.get_principle(principle.merged_into)
        if nxt is None:
            return principle
        principle = nxt
    raise RuntimeError(f"principle {principle.principle_id}: merged_into chain longer than {_MAX_MERGE_HOPS}")


def add_principles(store: Any, candidates: Iterable[Principle], *, threshold: float = DEFAULT_THRESHOLD,
                   judge: Judge | None = None) -> AddReport:
    """Add candidates to the store one by one, updating or merging where they repeat a stored lesson.

    Each candidate is written before the next is looked at, so duplicates within one batch merge too.
    """
    report = AddReport()
    for candidate in candidates:
        stored = store.get_principle(candidate.principle_id)
        if stored is not None and stored.status == "merged":
            survivor = _resolve(store, stored)
            store.upsert_principles(merge(survivor, candidate, 1.0))
            report.merged.append((candidate.principle_id, survivor.principle_id, 1.0))
            continue
        if stored is not None:
            if _refresh(stored, candidate):
                store.upsert_principles(stored)
                report.updated.append(stored.principle_id)
            else:
                report.unchanged.append(stored.principle_id)
            continue
        duplicate = _duplicate_of(store, candidate, threshold, judge)
        if duplicate is not None:
            target, similarity = duplicate
            store.upsert_principles(merge(target, candidate, similarity))
            report.merged.append((candidate.principle_id, target.principle_id, similarity))
            continue
        store.upsert_principles(candidate)
        report.added.append(candidate.principle_id)
    return report


def deduplicate(store: Any, *, threshold: float = DEFAULT_THRESHOLD, judge: Judge | None = None,
                **filters: Any) -> list[tuple[str, str, float]]:
    """Merge near-duplicate active principles already in the store; returns (absorbed, into, similarity)."""
    merges = []
    pool = sorted(store.iterate_principles(status="active", key="", **filters),
                  key=lambda p: (len(p.source_trajectories), p.score, p.usage_count), reverse=True)
    gone: set[str] = set()
    for principle in pool:  # strongest first: the weaker duplicates merge into it
        if principle.principle_id in gone:
            continue
        current = store.get_principle(principle.principle_id) or principle
        while (found := _duplicate_of(store, current, threshold, judge, exclude=current.principle_id,
                                      status=("active",))) is not None:
            other, similarity = found
            store.upsert_principles([merge(current, other, similarity), _absorbed(other, current, similarity)])
            gone.add(other.principle_id)
            merges.append((other.principle_id, current.principle_id, similarity))
    return merges


def shown_principles(trajectory: Trajectory) -> list[str]:
    """Ids of the principles shown in an episode's prompts (recorded by a principles policy)."""
    ids = list(trajectory.metadata.get(SHOWN_KEY, []))
    for step in trajectory.steps:
        ids.extend(step.info.get(SHOWN_KEY, []))
    return list(dict.fromkeys(str(i) for i in ids))


def _credited_before(principle: Principle) -> set[str]:
    done: set[str] = set()
    for change in principle.history:
        if change.change == "credited":
            done.update(change.details.get("trajectories", []))
    return done


def credit(store: Any, trajectories: Iterable[Trajectory]) -> CreditReport:
    """Count each finished episode for the principles shown in its prompts (and only those)."""
    report = CreditReport()
    outcomes: dict[str, dict[str, bool]] = defaultdict(dict)  # shown id -> trajectory id -> success
    for traj in trajectories:
        for pid in shown_principles(traj):
            outcomes[pid][traj.trajectory_id] = traj.success
    if not outcomes:
        return report
    stored = store.get_principles(outcomes)
    report.unknown = sorted(set(outcomes) - set(stored))
    by_survivor: dict[str, dict[str, bool]] = defaultdict(dict)
    survivors: dict[str, Principle] = {}
    for pid, principle in stored.items():
        survivor = _resolve(store, principle)
        survivors.setdefault(survivor.principle_id, survivor)
        by_survivor[survivor.principle_id].update(outcomes[pid])  # an episode counts once per lesson
    changed, episodes, skipped = [], set(), set()
    for sid, episodes_of in by_survivor.items():
        principle = survivors[sid]
        before = _credited_before(principle)
        fresh = {tid: won for tid, won in episodes_of.items() if tid not in before}
        skipped.update(tid for tid in episodes_of if tid in before)
        if not fresh:
            continue
        wins = sum(fresh.values())
        principle.usage_count += len(fresh)
        principle.success_count += wins
        principle.record("credited", f"shown in {len(fresh)} episodes, {wins} succeeded",
                         trajectories=sorted(fresh), successes=sorted(t for t, won in fresh.items() if won))
        changed.append(principle)
        report.credited[sid] = (len(fresh), wins)
        episodes.update(fresh)
    store.upsert_principles(changed)
    report.episodes = len(episodes)
    report.skipped = len(skipped - episodes)
    return report


def prune(store: Any, *, threshold: float = 0.3, min_usage: int = 5, **filters: Any) -> list[Principle]:
    """Mark active principles with at least ``min_usage`` uses and a score below ``threshold`` as pruned."""
    pruned = []
    for principle in store.iterate_principles(status="active", **filters):
        if principle.usage_count >= min_usage and principle.score < threshold:
            principle.status = "pruned"
            principle.record("pruned", f"score {principle.score:.3f} < {threshold} after {principle.usage_count} uses",
                             score=round(principle.score, 6), threshold=threshold, min_usage=min_usage)
            pruned.append(principle)
    store.upsert_principles(pruned)
    return pruned
