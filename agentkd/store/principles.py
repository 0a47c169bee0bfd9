"""Principle storage: the ``{prefix}_principles`` collection of an experience store.

:class:`PrincipleStorage` is a mixin of :class:`~agentkd.store.ExperienceStore`: its methods use
the store's collections, retries and search (``_col``, ``_call``, ``_embed``, ``_page``,
``_nearest``, ``_max_batch``). A principle row has id ``principle_id``, document the Principle JSON,
embedding its text and the metadata of :func:`~agentkd.store.records.principle_metadata`.

Importing this module does not import chromadb.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from agentkd.schema import Principle

from .chroma import chunks, upsert_chunked
from .records import PRINCIPLE_FILTER_KEYS, PrincipleHit, principle_metadata, similarity_from_distance, where_clause

__all__ = ["PrincipleStorage"]


class PrincipleStorage:
    """The principle methods of :class:`~agentkd.store.ExperienceStore`."""

    # Provided by ExperienceStore.
    _max_batch: int
    _col: Callable[[str], Any]
    _call: Callable[[Callable[[], Any]], Any]
    _embed: Callable[[list[str]], list[Any]]
    _page: Callable[..., Iterator[dict]]
    _nearest: Callable[..., list[list[tuple[str, str, dict[str, Any], float]]]]
    hold_writer_lock: Callable[[], None]

    def upsert_principles(self, principles: Principle | Iterable[Principle]) -> int:
        """Write principles (idempotent by ``principle_id``; embedding = the principle's text)."""
        batch = [principles] if isinstance(principles, Principle) else list(principles)
        by_id = {principle.principle_id: principle for principle in batch}
        if not by_id:
            return 0
        self.hold_writer_lock()
        col = self._col("principles")
        items = list(by_id.values())
        upsert_chunked(
            col,
            ids=[principle.principle_id for principle in items],
            embeddings=self._embed([principle.text for principle in items]),
            documents=[principle.to_json() for principle in items],
            metadatas=[principle_metadata(principle) for principle in items],
            max_batch=self._max_batch,
            call=self._call,
        )
        return len(items)

    def get_principle(self, principle_id: str) -> Principle | None:
        """The stored principle, or None."""
        return self.get_principles([principle_id]).get(principle_id)

    def get_principles(self, principle_ids: Iterable[str]) -> dict[str, Principle]:
        """The stored principles among these ids, by id (missing ids are left out)."""
        wanted = list(dict.fromkeys(principle_ids))
        col = self._col("principles")
        found: dict[str, Principle] = {}
        for chunk in chunks(wanted, self._max_batch):
            got = self._call(lambda chunk=chunk: col.get(ids=list(chunk), include=["documents"]))
            found.update((i, Principle.from_json(doc)) for i, doc in zip(got["ids"], got["documents"], strict=True))
        return found

    def iterate_principles(self, batch_size: int = 500, **filters: Any) -> Iterator[Principle]:
        """Every principle matching the filters (:data:`PRINCIPLE_FILTER_KEYS`; e.g. ``status="active"``)."""
        for page in self._page("principles", ["documents"], batch_size, where_clause(filters, PRINCIPLE_FILTER_KEYS)):
            for document in page["documents"]:
                yield Principle.from_json(document)

    def count_principles(self, **filters: Any) -> int:
        """Number of principles matching the filters."""
        where = where_clause(filters, PRINCIPLE_FILTER_KEYS)
        if where is None:
            return int(self._call(self._col("principles").count))
        return sum(len(page["ids"]) for page in self._page("principles", [], 5000, where))

    def query_principles(self, text: str, k: int = 5, **filters: Any) -> list[PrincipleHit]:
        """The ``k`` principles whose text is most similar to ``text``, most similar first."""
        return self.query_principles_many([text], k, **filters)[0]

    def query_principles_many(self, texts: Sequence[str], k: int = 5, **filters: Any) -> list[list[PrincipleHit]]:
        """:meth:`query_principles` for many texts at once (one embedding call, one Chroma query).

        A list value matches any of its items: ``task_type=["heat", ""]`` gives the principles of
        that task type and the env-wide ones.
        """
        texts = list(texts)
        if not texts:
            return []
        rows = self._nearest("principles", self._embed(texts), k, filters, PRINCIPLE_FILTER_KEYS)
        return [
            [
                PrincipleHit(Principle.from_json(document), similarity_from_distance(distance), distance)
                for _, document, _, distance in found
            ]
            for found in rows
        ]

    def delete_principles(self, principle_ids: str | Iterable[str]) -> None:
        """Remove principles for good (ids that are not there are ignored); pruning keeps them instead."""
        ids = [principle_ids] if isinstance(principle_ids, str) else list(principle_ids)
        self.hold_writer_lock()
        col = self._col("principles")
        for chunk in chunks(ids, self._max_batch):
            self._call(lambda chunk=chunk: col.delete(ids=list(chunk)))
