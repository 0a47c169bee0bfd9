"""`ExperienceStore`: recorded trajectories, their steps and principles in Chroma.

One store is a set of Chroma collections sharing a prefix (``agentkd`` by default):

``{prefix}_trajectories``
    one record per trajectory: id = ``trajectory_id``, document = the full trajectory JSON,
    embedding = the embedding of the goal, metadata = the flat fields filters and stats need.
``{prefix}_steps``
    one record per step: id = ``"{trajectory_id}:{index:03d}"``, document = the *step context*
    (:func:`step_context`: goal + last actions with their observations + current observation),
    which is what is embedded and what in-context distillation retrieves as a demonstration.
``{prefix}_principles``
    distilled principles (document = Principle JSON, embedding = its text).
``{prefix}_meta``
    an empty collection whose metadata marks the store: schema version and embedder name.

The location is a folder (embedded ``chromadb.PersistentClient``) or an ``http(s)://host:port``
URL (``chromadb.HttpClient`` to a ``chroma run`` server). Every Chroma call is retried with
exponential backoff on connection errors; when a server stays unreachable, :meth:`upsert` appends
the trajectories to a local JSONL *spool* and raises :class:`StoreUnavailable`. A store imports
its spool each time it opens, so nothing recorded during an outage is lost.

Writes are idempotent by id. Within one :meth:`upsert` the steps are written first and the
trajectory record last: the record is the commit marker, so a run killed in between leaves only
orphan steps, which the next upsert of the same id overwrites.

The parts live in their own modules: the Chroma client, retries and chunked upserts in
:mod:`.chroma`, record conversion and filters in :mod:`.records`, the spool in :mod:`.spool`,
JSONL files and datasets in :mod:`.transfer`, the principle methods in :mod:`.principles`,
similarity search in :mod:`.search`.

Importing this module does not import chromadb, torch or datasets (the retriever uses
:func:`step_context` without them).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from agentkd.schema import Trajectory

from . import lock as _lock
from . import spool as _spool
from . import transfer as _transfer
from .chroma import (
    RetryPolicy,
    StoreError,
    StoreUnavailable,
    chunks,
    close_client,
    collection_marks,
    cosine_collection,
    embedder_name,
    is_connection_error,
    list_collections,
    make_chroma_client,
    retry_call,
    upsert_chunked,
)
from .marks import check_creatable, check_embedder, check_marks, new_marks
from .principles import PrincipleStorage
from .records import (
    FILTER_KEYS,
    PRINCIPLE_FILTER_KEYS,
    PrincipleHit,
    StepHit,
    TrajectoryHit,
    count_metadata,
    similarity_from_distance,
    step_context,
    step_id,
    step_metadata,
    steps_of,
    trajectory_metadata,
    where_clause,
)
from .search import StoreSearch
from .transfer import BadRecordError

__all__ = [
    "FILTER_KEYS",
    "PRINCIPLE_FILTER_KEYS",
    "BadRecordError",
    "ExperienceStore",
    "PrincipleHit",
    "RetryPolicy",
    "StepHit",
    "StoreError",
    "StoreUnavailable",
    "TrajectoryHit",
    "embedder_name",
    "make_chroma_client",
    "similarity_from_distance",
    "step_context",
]

T = TypeVar("T")



# ---- the store ----------------------------------------------------------------------------------


class ExperienceStore(PrincipleStorage, StoreSearch, _transfer.FileTransfer):
    """Trajectories, steps and principles in Chroma, embedded (a folder) or on a server (a URL).

    Args:
        location: a folder for the embedded store (created when missing or empty) or
            ``http(s)://host:port`` of a Chroma server (``chroma run --path DIR --port PORT``).
        embedding_function: any Chroma embedding function, or ``"minilm"``/``"static"``
            (:mod:`.embedder_choice`); ``None``: an existing store's recorded one, else the default.
            A store remembers its embedder and refuses to open with another one, naming both.
        embed_device: torch device of an embedder agentkd makes (``cuda`` for MiniLM on a GPU).
        create: create the store when it does not exist (otherwise :class:`StoreError`).
        collection_prefix: collection names are ``{prefix}_trajectories`` etc.; several stores
            can share one server or folder under different prefixes.
        spool_dir: where :meth:`upsert` saves trajectories when the server is unreachable.
        retry: backoff for Chroma calls on connection errors.
        lazy: connect on first use instead of now. An unreachable server then surfaces at the
            first call — for :meth:`upsert`, as a spool write plus :class:`StoreUnavailable` —
            which suits recorders that must not lose episodes if the server is down at start.
        import_spool: import this store's spool as soon as it opens.

    Example::

        store = ExperienceStore("trajectories/store")          # or "http://127.0.0.1:8000"
        store.upsert(trajectories)
        store.query_steps("Your task is to: put a hot apple in fridge.", k=5, env="household", success=True)
    """

    def __init__(
        self,
        location: str | Path = "trajectories/store",
        *,
        embedding_function: Any | None = None,
        create: bool = True,
        collection_prefix: str = "agentkd",
        spool_dir: str | Path = "trajectories/spool",
        retry: RetryPolicy | None = None,
        lazy: bool = False,
        import_spool: bool = True,
        embed_device: str = "cpu",
    ) -> None:
        location_text = str(location)
        self.is_server = location_text.startswith(("http://", "https://"))
        self.url: str | None = location_text.rstrip("/") if self.is_server else None
        self.path: Path | None = None if self.is_server else Path(location_text).expanduser()
        self.prefix = collection_prefix
        self.create = create
        self.spool_dir = Path(spool_dir)
        self.retry_policy = retry or RetryPolicy()
        self._auto_import_spool = import_spool
        self.embed_device = embed_device
        if isinstance(embedding_function, str):
            from .embedder_choice import make_embedding_function

            embedding_function = make_embedding_function(embedding_function, device=embed_device)
        self._ef: Any = embedding_function  # None: the recorded one (or the default), chosen on opening
        self._client: Any = None
        self._collections: dict[str, Any] = {}
        self._writer_lock: Path | None = None
        self._max_batch = 1000
        self.meta: dict[str, Any] = {}
        if not lazy:
            self._ensure_open()

    # ---- opening --------------------------------------------------------------------------------

    @property
    def embedding_function(self) -> Any:
        """The store's embedding function (opening the store when it was to be the recorded one)."""
        if self._ef is None:
            self._ensure_open()
        return self._ef

    @property
    def embedder(self) -> str:
        """The name of the store's embedder (what its meta records)."""
        return embedder_name(self.embedding_function)

    @property
    def location(self) -> str:
        return self.url if self.url is not None else str(self.path)

    @property
    def spool_file(self) -> Path:
        """JSONL file that collects trajectories :meth:`upsert` could not write."""
        return self.spool_dir / f"{self.prefix}.jsonl"

    def _name(self, kind: str) -> str:
        return f"{self.prefix}_{kind}"

    def _retry(self, fn: Callable[[], T]) -> T:
        return retry_call(fn, self.retry_policy)

    def _call(self, fn: Callable[[], T]) -> T:
        """Run a Chroma call with retries; an unreachable server becomes StoreUnavailable."""
        try:
            return self._retry(fn)
        except Exception as exc:
            if self.is_server and is_connection_error(exc):
                raise self._unavailable(exc) from exc
            raise

    def _unavailable(self, exc: BaseException, spooled: int = 0) -> StoreUnavailable:
        tries = self.retry_policy.tries
        message = f"Chroma server at {self.url} is unreachable after {tries} tries ({type(exc).__name__}: {exc})."
        if spooled:
            message += (
                f" {spooled} trajectories were saved to the spool {self.spool_file}; they are imported"
                f" automatically the next time a store opens with spool_dir={str(self.spool_dir)!r}"
                " (or call ExperienceStore.import_spool())."
            )
        else:
            message += " Start the server (chroma run --path DIR --host HOST --port PORT) or check the URL."
        return StoreUnavailable(message, url=self.url, spool_file=self.spool_file if spooled else None)

    def _make_client(self) -> Any:
        return make_chroma_client(self.location, create=self.create, call=self._call)

    def _ensure_open(self) -> None:
        if self._client is not None:
            return
        client = self._make_client()
        try:
            self._open_collections(client)
        except BaseException:
            close_client(client)
            raise
        self._client = client
        if self._auto_import_spool:
            try:
                self.import_spool()
            except Exception as exc:  # noqa: BLE001 - opening must not fail because of an old spool
                warnings.warn(f"could not import the spool {self.spool_file}: {exc}; it is kept", stacklevel=3)

    def _open_collections(self, client: Any) -> None:
        listed = list_collections(client, self._call)
        meta_name = self._name("meta")
        if meta_name in listed:
            meta = collection_marks(client, meta_name, self._call)
            check_marks(meta, location=self.location, meta_name=meta_name)
            self._choose_embedder(meta.get("embedder") or None)
            check_embedder(meta, self.embedder, location=self.location)
        else:
            ours = {self._name(kind) for kind in ("trajectories", "steps", "principles")}
            check_creatable(listed, ours, location=self.location, prefix=self.prefix, folder=self.path is not None,
                            create=self.create)
            self._choose_embedder(None)
            meta = new_marks(self.embedder)
            self._call(lambda: client.get_or_create_collection(meta_name, metadata=meta, embedding_function=None))
        self.meta = meta
        ef = self.embedding_function
        for kind in ("trajectories", "steps", "principles"):
            self._collections[kind] = cosine_collection(client, self._name(kind), ef, call=self._call)
        self._max_batch = max(1, int(self._call(client.get_max_batch_size)))

    def _choose_embedder(self, recorded: str | None) -> None:
        """Settle the embedding function: the chosen one, else the ``recorded`` one, else the default."""
        if self._ef is None:
            from .embedder_choice import EmbedderChoiceError, resolve_embedding_function

            try:
                self._ef = resolve_embedding_function(
                    None, recorded=recorded, where=f"the store at {self.location}", device=self.embed_device
                )
            except EmbedderChoiceError as exc:
                raise StoreError(str(exc)) from exc

    def close(self) -> None:
        """Release the Chroma client (the files of an embedded store can then be moved or deleted)."""
        if self._client is not None:
            close_client(self._client)
        self._client = None
        self._collections = {}
        if self._writer_lock is not None:
            _lock.release(self._writer_lock)
            self._writer_lock = None

    def hold_writer_lock(self) -> None:
        """Claim an embedded store's folder for this process's writes (:mod:`.lock`); the first write
        does this anyway. Raises :class:`~agentkd.store.lock.StoreBusy` when another process writes there."""
        if self.path is not None and self._writer_lock is None:
            self._ensure_open()
            self._writer_lock = _lock.acquire(self.path)

    def __enter__(self) -> ExperienceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ExperienceStore({self.location!r}, collection_prefix={self.prefix!r})"

    def _col(self, kind: str) -> Any:
        self._ensure_open()
        return self._collections[kind]

    def _embed(self, texts: list[str]) -> list[Any]:
        return list(self.embedding_function(texts)) if texts else []

    # ---- writing --------------------------------------------------------------------------------

    def upsert(self, trajectories: Trajectory | Iterable[Trajectory]) -> int:
        """Write trajectories (idempotent by id); returns how many were written or already current.

        Unchanged records (same JSON as stored) are skipped without re-embedding. When the server
        stays unreachable the trajectories go to the spool and :class:`StoreUnavailable` is raised.
        """
        batch = [trajectories] if isinstance(trajectories, Trajectory) else list(trajectories)
        by_id = {traj.trajectory_id: traj for traj in batch}  # the last version of an id wins
        if not by_id:
            return 0
        try:
            self._write(list(by_id.values()))
        except StoreUnavailable as exc:
            if not self.is_server:
                raise
            self._spool(list(by_id.values()))
            cause = exc.__cause__ or exc
            raise self._unavailable(cause, spooled=len(by_id)) from cause
        return len(by_id)

    def _write(self, batch: list[Trajectory]) -> None:
        self.hold_writer_lock()
        trajectories = self._col("trajectories")
        steps = self._col("steps")
        documents = {traj.trajectory_id: traj.to_json() for traj in batch}
        ids = list(documents)
        stored: dict[str, str] = {}
        for chunk in chunks(ids, self._max_batch):
            got = self._call(lambda chunk=chunk: trajectories.get(ids=list(chunk), include=["documents"]))
            stored.update(zip(got["ids"], got["documents"], strict=True))
        todo = [traj for traj in batch if stored.get(traj.trajectory_id) != documents[traj.trajectory_id]]
        if not todo:
            return
        # Steps left from an earlier, longer version of a trajectory (or a killed run) go first.
        todo_ids = [traj.trajectory_id for traj in todo]
        new_step_ids = {step_id(traj.trajectory_id, step.index) for traj in todo for step in traj.steps}
        stale: list[str] = []
        for chunk in chunks(todo_ids, 500):
            got = self._call(lambda chunk=chunk: steps.get(where={"trajectory_id": {"$in": list(chunk)}}, include=[]))
            stale.extend(record_id for record_id in got["ids"] if record_id not in new_step_ids)
        for chunk in chunks(stale, self._max_batch):
            self._call(lambda chunk=chunk: steps.delete(ids=list(chunk)))

        step_ids, step_docs, step_meta = [], [], []
        for traj in todo:
            for step, context in steps_of(traj):
                step_ids.append(step_id(traj.trajectory_id, step.index))
                step_docs.append(context)
                step_meta.append(step_metadata(traj, step))
        step_vectors = self._embed(step_docs)
        goal_vectors = self._embed([traj.goal for traj in todo])
        upsert_chunked(
            steps,
            ids=step_ids,
            embeddings=step_vectors,
            documents=step_docs,
            metadatas=step_meta,
            max_batch=self._max_batch,
            call=self._call,
        )
        # The trajectory record last: its presence means all its steps are in.
        upsert_chunked(
            trajectories,
            ids=[traj.trajectory_id for traj in todo],
            embeddings=goal_vectors,
            documents=[documents[traj.trajectory_id] for traj in todo],
            metadatas=[trajectory_metadata(traj) for traj in todo],
            max_batch=self._max_batch,
            call=self._call,
        )

    def delete(self, trajectory_ids: str | Iterable[str]) -> None:
        """Remove trajectories and their steps (ids that are not there are ignored)."""
        ids = [trajectory_ids] if isinstance(trajectory_ids, str) else list(trajectory_ids)
        if not ids:
            return
        self.hold_writer_lock()
        trajectories, steps = self._col("trajectories"), self._col("steps")
        for chunk in chunks(ids, 500):
            self._call(lambda chunk=chunk: trajectories.delete(ids=list(chunk)))
            self._call(lambda chunk=chunk: steps.delete(where={"trajectory_id": {"$in": list(chunk)}}))

    # ---- spool ------------------------------------------------------------------------------------

    def _spool(self, batch: list[Trajectory]) -> None:
        _spool.spool(self.spool_file, batch)

    def import_spool(self) -> int:
        """Upsert the trajectories spooled during an outage; returns how many were imported.

        The spool file is claimed (renamed) first, so recorders can keep appending meanwhile, and
        removed only after every trajectory in it was written. Lines that do not parse (a write cut
        short by a crash) are moved to ``{prefix}.jsonl.rejected`` with a warning.
        """
        return _spool.import_spool(self.spool_file, self._write)

    # ---- reading --------------------------------------------------------------------------------

    def get(self, trajectory_id: str) -> Trajectory | None:
        """The stored trajectory, or None."""
        col = self._col("trajectories")
        got = self._call(lambda: col.get(ids=[trajectory_id], include=["documents"]))
        return Trajectory.from_json(got["documents"][0]) if got["ids"] else None

    def has(self, ids: str | Iterable[str]) -> set[str]:
        """Which of these trajectory ids are in the store."""
        wanted = [ids] if isinstance(ids, str) else list(dict.fromkeys(ids))
        col = self._col("trajectories")
        found: set[str] = set()
        for chunk in chunks(wanted, self._max_batch):
            found.update(self._call(lambda chunk=chunk: col.get(ids=list(chunk), include=[]))["ids"])
        return found

    def _page(self, kind: str, include: list[str], batch_size: int, where: dict[str, Any] | None) -> Iterator[dict]:
        col = self._col(kind)
        offset = 0
        while True:
            got = self._call(
                lambda offset=offset: col.get(where=where, include=include, limit=batch_size, offset=offset)
            )
            if not got["ids"]:
                return
            yield got
            if len(got["ids"]) < batch_size:
                return
            offset += len(got["ids"])

    def _count(self, kind: str, filters: dict[str, Any]) -> int:
        where = where_clause(filters)
        if where is None:
            return int(self._call(self._col(kind).count))
        return sum(len(page["ids"]) for page in self._page(kind, [], 5000, where))

    def count(self, **filters: Any) -> int:
        """Number of trajectories matching the filters (all of them without filters)."""
        return self._count("trajectories", filters)

    def count_steps(self, **filters: Any) -> int:
        """Number of step records matching the filters."""
        return self._count("steps", filters)

    def iterate(self, batch_size: int = 500, **filters: Any) -> Iterator[Trajectory]:
        """Every trajectory matching the filters, fetched ``batch_size`` at a time."""
        for page in self._page("trajectories", ["documents"], batch_size, where_clause(filters)):
            for document in page["documents"]:
                yield Trajectory.from_json(document)

    def stats(self, **filters: Any) -> dict[str, Any]:
        """Counts of the (filtered) trajectories by env, split, task_type, policy and success.

        Returns ``{"trajectories", "steps", "principles", "success_rate", "env": {...},
        "split": {...}, "task_type": {...}, "policy": {"kind:name": n}, "success": {"true": n,
        "false": n}}``; ``steps`` sums ``num_steps`` of the counted trajectories.
        """
        pages = self._page("trajectories", ["metadatas"], 5000, where_clause(filters))
        counts = count_metadata(metadata for page in pages for metadata in page["metadatas"])
        return {**counts, "principles": int(self._call(self._col("principles").count))}
