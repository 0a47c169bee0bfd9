"""Similarity search over an experience store: steps (in-context demonstrations) and trajectories.

:class:`StoreSearch` is a mixin of :class:`~agentkd.store.ExperienceStore`: its methods use the
store's collections, retries and embedder (``_col``, ``_call``, ``_embed``). Filters are the
store's (:data:`~agentkd.store.records.FILTER_KEYS`); the principle search uses :meth:`_nearest` too.

Importing this module does not import chromadb.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from agentkd.schema import Trajectory

from .records import FILTER_KEYS, StepHit, TrajectoryHit, matches_filters, where_clause

__all__ = ["StoreSearch"]

_OVERFETCH, _OVERFETCH_MIN = 8, 40  # plain-search candidates per wanted hit before a filtered search


class StoreSearch:
    """The search methods of :class:`~agentkd.store.ExperienceStore`."""

    # Provided by ExperienceStore.
    _col: Callable[[str], Any]
    _call: Callable[[Callable[[], Any]], Any]
    _embed: Callable[[list[str]], list[Any]]

    def query_steps(self, text: str, k: int = 5, **filters: Any) -> list[StepHit]:
        """The ``k`` stored steps whose context is most similar to ``text`` (build it with
        :func:`step_context`), nearest first."""
        return self.query_steps_many([text], k, **filters)[0]

    def query_steps_many(self, texts: Sequence[str], k: int = 5, **filters: Any) -> list[list[StepHit]]:
        """:meth:`query_steps` for many texts at once (one embedding call, one Chroma query): what a
        batched replay wants when many episodes are at a step together."""
        texts = list(texts)
        if not texts:
            return []
        return self._query_steps_by_vectors(self._embed(texts), k, filters)

    def _query_steps_by_vectors(self, vectors: list[Any], k: int, filters: dict[str, Any]) -> list[list[StepHit]]:
        return [
            [
                StepHit(
                    trajectory_id=str(metadata.get("trajectory_id", "")),
                    index=int(metadata.get("index", -1)),
                    action=str(metadata.get("action", "")),
                    thought=str(metadata.get("thought", "")),
                    document=document,
                    distance=distance,
                    metadata=metadata,
                )
                for _, document, metadata, distance in rows
            ]
            for rows in self._nearest("steps", vectors, k, filters)
        ]

    def query_trajectories(self, text: str, k: int = 5, **filters: Any) -> list[TrajectoryHit]:
        """The ``k`` trajectories whose goal is most similar to ``text``, nearest first."""
        rows = self._nearest("trajectories", self._embed([text]), k, filters)[0]
        return [
            TrajectoryHit(
                trajectory_id=trajectory_id,
                distance=distance,
                metadata=metadata,
                trajectory=Trajectory.from_json(document),
            )
            for trajectory_id, document, metadata, distance in rows
        ]

    def _nearest(
        self, kind: str, vectors: list[Any], k: int, filters: dict[str, Any], keys: Sequence[str] = FILTER_KEYS
    ) -> list[list[tuple[str, str, dict[str, Any], float]]]:
        """Nearest records per query vector as (id, document, metadata, distance), nearest first.

        Chroma's filtered search costs 15–40 ms on 20k steps whatever the filter, while a plain
        search for a few dozen neighbours costs a few ms. So filters are applied to an
        over-fetched plain search first; only queries where fewer than ``k`` of those candidates
        pass go to Chroma's filtered search. Both give the first ``k`` matching records in
        distance order: the filtered top-k is the prefix of the global ranking that passes.
        """
        where = where_clause(filters, keys)
        col = self._col(kind)

        def search(query_vectors: list[Any], n: int, where: dict[str, Any] | None) -> list[list[tuple]]:
            got = self._call(
                lambda: col.query(
                    query_embeddings=query_vectors,
                    n_results=n,
                    where=where,
                    include=["documents", "metadatas", "distances"],
                )
            )
            return [
                [
                    (record_id, document or "", dict(metadata or {}), float(distance))
                    for record_id, document, metadata, distance in zip(*columns, strict=True)
                ]
                for columns in zip(got["ids"], got["documents"], got["metadatas"], got["distances"], strict=True)
            ]

        if k <= 0 or not vectors:
            return [[] for _ in vectors]
        if where is None:
            return search(vectors, k, None)
        fetch = max(k * _OVERFETCH, _OVERFETCH_MIN)
        results = []
        again: list[int] = []
        for position, rows in enumerate(search(vectors, fetch, None)):
            kept = [row for row in rows if matches_filters(row[2], filters)][:k]
            if len(kept) < k and len(rows) >= fetch:  # more matches may lie beyond the candidates
                again.append(position)
            results.append(kept)
        if again:
            for position, rows in zip(again, search([vectors[i] for i in again], k, where), strict=True):
                results[position] = rows
        return results
