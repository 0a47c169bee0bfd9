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

Importing this module does not import chromadb, torch or datasets (the retriever uses
:func:`step_context` without them).
"""

from __future__ import annotations

import os
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError

from agentkd.errors import AgentKDError
from agentkd.schema import SCHEMA_VERSION, Principle, SchemaVersionError, Step, Trajectory

if TYPE_CHECKING:  # pragma: no cover
    import datasets

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
    "make_chroma_client",
    "similarity_from_distance",
    "step_context",
]

T = TypeVar("T")

#: Keyword filters accepted by count/iterate/query_*/stats/export_jsonl/to_dataset.
FILTER_KEYS = ("env", "split", "task_type", "success", "policy_kind", "policy_name", "evaluation")
#: Keyword filters accepted by the principle methods (``task_type=""`` selects env-wide principles).
PRINCIPLE_FILTER_KEYS = ("env", "kind", "task_type", "status", "key")

_META_MARK = "agentkd_store"  # key in the meta collection's metadata that marks an agentkd store
_THOUGHT_CHARS = 1000  # thoughts are truncated to this in step metadata
_HISTORY_OBS_CHARS = 200  # each earlier observation in a step context
_CURRENT_OBS_CHARS = 600  # the current observation in a step context
_IMPORT_CHUNK = 256  # trajectories per upsert when importing a file or a spool
_OVERFETCH, _OVERFETCH_MIN = 8, 40  # plain-search candidates per wanted hit before a filtered search


# ---- errors and small records -----------------------------------------------------------------


class StoreError(AgentKDError, RuntimeError):
    """The location is not a usable agentkd store (wrong folder, newer schema, other embedder...)."""


class StoreUnavailable(StoreError):
    """The Chroma server could not be reached (after retries)."""

    def __init__(self, message: str, *, url: str | None = None, spool_file: Path | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.spool_file = spool_file


class BadRecordError(AgentKDError, ValueError):
    """A line of a JSONL file is not a valid trajectory; names the file and the line number."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: not a valid trajectory: {reason}")
        self.path = path
        self.line = line


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for Chroma calls: ``tries`` attempts, waiting ``delay_s`` then ×``backoff``."""

    tries: int = 5
    delay_s: float = 0.2
    backoff: float = 2.0
    max_delay_s: float = 5.0


@dataclass
class StepHit:
    """One step returned by :meth:`ExperienceStore.query_steps` (smaller distance = more similar)."""

    trajectory_id: str
    index: int
    action: str
    thought: str
    document: str  # the step context that was embedded
    distance: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrajectoryHit:
    """One trajectory returned by :meth:`ExperienceStore.query_trajectories` (goal similarity)."""

    trajectory_id: str
    distance: float
    metadata: dict[str, Any]
    trajectory: Trajectory


@dataclass
class PrincipleHit:
    """One principle returned by :meth:`ExperienceStore.query_principles`.

    ``similarity`` is the cosine similarity of the query and the principle's text (1 = same
    direction); Chroma reports cosine *distance*, ``1 - similarity``, which is kept as ``distance``.
    """

    principle: Principle
    similarity: float
    distance: float


def similarity_from_distance(distance: float) -> float:
    """Cosine similarity from a Chroma cosine distance (``distance = 1 - similarity``): larger = more alike."""
    return 1.0 - float(distance)


# ---- step context -----------------------------------------------------------------------------


def _truncate(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def step_context(goal: str, history: list[Step], observation: str, max_history: int = 3) -> str:
    """The text that represents one decision point: what is embedded, stored and retrieved.

    ``history`` are the steps taken so far in the episode (oldest first) and ``observation`` what
    the agent sees now. The text is the goal, the last ``max_history`` actions each followed by
    the observation it produced (truncated), and the current observation::

        Goal: put a clean mug in coffeemachine.
        > go to countertop 1
        You arrive at countertop 1. On the countertop 1, you see a mug 1.
        > take mug 1 from countertop 1
        Observation: You pick up the mug 1 from the countertop 1.

    (the last action's result is the current observation, so it is not repeated). Whitespace is
    collapsed. The store builds step documents with this function and the in-context
    distillation retriever builds its queries with it, so both sides embed the same shape.
    """
    lines = [f"Goal: {_truncate(goal, _CURRENT_OBS_CHARS)}"]
    recent = history[-max_history:] if max_history > 0 else []
    current = " ".join(observation.split())
    for position, step in enumerate(recent):
        lines.append(f"> {_truncate(step.action, _HISTORY_OBS_CHARS)}")
        result = " ".join(step.next_observation.split())
        if result and not (position == len(recent) - 1 and result == current):
            lines.append(_truncate(result, _HISTORY_OBS_CHARS))
    lines.append(f"Observation: {_truncate(current, _CURRENT_OBS_CHARS)}")
    return "\n".join(lines)


# ---- filters and metadata -----------------------------------------------------------------------


def _where(filters: dict[str, Any], keys: Sequence[str] = FILTER_KEYS) -> dict[str, Any] | None:
    unknown = sorted(set(filters) - set(keys))
    if unknown:
        raise TypeError(f"unknown filter(s) {', '.join(unknown)}; filters are {', '.join(keys)}")
    clauses: list[dict[str, Any]] = []
    for key in keys:
        value = filters.get(key)
        if value is None:
            continue
        if isinstance(value, (list, tuple, set, frozenset)):
            values = sorted(value, key=str)
            clauses.append({key: {"$in": values}} if len(values) != 1 else {key: values[0]})
        else:
            clauses.append({key: value})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _matches(metadata: dict[str, Any], filters: dict[str, Any]) -> bool:
    """Whether a record's metadata passes the filters (the client-side twin of :func:`_where`)."""
    for key, value in filters.items():
        if value is None:
            continue
        found = metadata.get(key)
        if isinstance(value, (list, tuple, set, frozenset)):
            if found not in value:
                return False
        elif found != value:
            return False
    return True


def _trajectory_metadata(traj: Trajectory) -> dict[str, Any]:
    return {
        "env": traj.env,
        "split": traj.split,
        "task_type": traj.task_type,
        "task_id": traj.task_id,
        "success": bool(traj.success),
        "reward": float(traj.reward),
        "num_steps": traj.num_steps,
        "policy_kind": traj.policy.kind,
        "policy_name": traj.policy.name,
        "seed": int(traj.seed),
        "prompt_tokens": int(traj.prompt_tokens),
        "completion_tokens": int(traj.completion_tokens),
        "cost_usd": float(traj.cost_usd),
        "evaluation": bool(traj.metadata.get("evaluation", False)),
        "started_at": traj.started_at.isoformat(),
        "schema_version": int(traj.schema_version),
    }


def _step_metadata(traj: Trajectory, step: Step) -> dict[str, Any]:
    return {
        "trajectory_id": traj.trajectory_id,
        "index": step.index,
        "action": step.action,
        "thought": step.thought[:_THOUGHT_CHARS],
        "env": traj.env,
        "split": traj.split,
        "task_type": traj.task_type,
        "success": bool(traj.success),
        "evaluation": bool(traj.metadata.get("evaluation", False)),
        "policy_kind": traj.policy.kind,
        "policy_name": traj.policy.name,
        "valid": bool(step.valid),
        "deferred": bool(step.deferred),
        "reward": float(step.reward),
        "done": bool(step.done),
    }


def _step_id(trajectory_id: str, index: int) -> str:
    return f"{trajectory_id}:{index:03d}"


def _steps_of(traj: Trajectory) -> Iterator[tuple[Step, str]]:
    for position, step in enumerate(traj.steps):
        yield step, step_context(traj.goal, traj.steps[:position], step.observation)


def _principle_metadata(principle: Principle) -> dict[str, Any]:
    return {
        "kind": principle.kind,
        "env": principle.env,
        "task_type": principle.task_type or "",  # "" = every task type of the env
        "score": float(principle.score),
        "usage_count": int(principle.usage_count),
        "success_count": int(principle.success_count),
        "version": int(principle.version),
        "status": principle.status,
        "key": principle.key or "",
    }


def embedder_name(ef: Any) -> str:
    try:
        name = ef.name()
    except Exception:  # noqa: BLE001 - legacy embedding functions may not implement name()
        name = NotImplemented
    if not isinstance(name, str):
        name = f"{type(ef).__module__}.{type(ef).__qualname__}"
    return name


def _is_connection_error(exc: BaseException) -> bool:
    import httpx

    if isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError)):
        return True
    # chromadb turns a refused connection at client creation into this ValueError
    return isinstance(exc, ValueError) and "Could not connect to a Chroma server" in str(exc)


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _parse_jsonl(path: Path) -> Iterator[tuple[int, Trajectory]]:
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, Trajectory.from_json(line)
            except SchemaVersionError as exc:
                raise BadRecordError(path, number, str(exc)) from exc
            except ValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {"msg": str(exc), "loc": ()}
                where = ".".join(str(part) for part in first.get("loc", ())) or "record"
                raise BadRecordError(path, number, f"{where}: {first.get('msg')}") from exc


def make_chroma_client(
    location: str | Path,
    *,
    create: bool = True,
    call: Callable[[Callable[[], Any]], Any] | None = None,
    kind: str = "agentkd store",
    error: type[Exception] = StoreError,
) -> Any:
    """A Chroma client: ``HttpClient`` for an ``http(s)://host:port`` URL, else ``PersistentClient`` on a folder.

    The folder must be new, empty or already hold a Chroma database (``chroma.sqlite3``), so that a
    typo never turns an unrelated folder into a store; ``create=False`` refuses a missing one. ``call``
    wraps the server connection (the store passes its retrying wrapper); ``kind`` and ``error`` name the
    thing in messages (the corpus index shares this function).
    """
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    location_text = str(location)
    if location_text.startswith(("http://", "https://")):
        url = location_text.rstrip("/")
        parts = urlsplit(url)
        if parts.path not in ("", "/") or not parts.hostname:
            raise error(f"unsupported Chroma server URL {url!r}; use http(s)://host:port")
        ssl = parts.scheme == "https"
        port = parts.port or (443 if ssl else 8000)

        def connect() -> Any:
            return chromadb.HttpClient(host=parts.hostname, port=port, ssl=ssl, settings=settings)

        return call(connect) if call is not None else connect()
    path = Path(location_text).expanduser()
    if path.exists() and not path.is_dir():
        raise error(f"{path} is a file, not an {kind} folder")
    has_files = path.is_dir() and any(path.iterdir())
    if has_files and not (path / "chroma.sqlite3").is_file():
        raise error(
            f"{path} is not an {kind}: it has files but no Chroma database (chroma.sqlite3); "
            "choose an empty or new folder"
        )
    if not has_files:
        if not create:
            raise error(f"no {kind} at {path}; pass create=True to create one")
        path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=settings)


# ---- the store ----------------------------------------------------------------------------------


class ExperienceStore:
    """Trajectories, steps and principles in Chroma, embedded (a folder) or on a server (a URL).

    Args:
        location: a folder for the embedded store (created when missing or empty) or
            ``http(s)://host:port`` of a Chroma server (``chroma run --path DIR --port PORT``).
        embedding_function: any Chroma embedding function; default
            :func:`~agentkd.store.embedder.default_embedding_function` (offline MiniLM). A store
            remembers its embedder's name and refuses to open with a different one.
        create: create the store when it does not exist (otherwise :class:`StoreError`).
        collection_prefix: collection names are ``{prefix}_trajectories`` etc.; several stores
            can share one server or folder under different prefixes.
        spool_dir: where :meth:`upsert` saves trajectories when the server is unreachable.
        retry: backoff for Chroma calls on connection errors.
        lazy: connect on first use instead of now. An unreachable server then surfaces at the
            first call — for :meth:`upsert`, as a spool write plus :class:`StoreUnavailable` —
            which suits recorders that must not lose episodes if the server is down at start.
        import_spool: import this store's spool as soon as it opens.
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
        if embedding_function is None:
            from .embedder import default_embedding_function

            embedding_function = default_embedding_function()
        self.embedding_function = embedding_function
        self.embedder = embedder_name(embedding_function)
        self._client: Any = None
        self._collections: dict[str, Any] = {}
        self._max_batch = 1000
        self.meta: dict[str, Any] = {}
        if not lazy:
            self._ensure_open()

    # ---- opening --------------------------------------------------------------------------------

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
        policy = self.retry_policy
        delay = policy.delay_s
        for attempt in range(1, max(1, policy.tries) + 1):
            try:
                return fn()
            except Exception as exc:
                if attempt >= policy.tries or not _is_connection_error(exc):
                    raise
                time.sleep(delay)
                delay = min(delay * policy.backoff, policy.max_delay_s)
        raise AssertionError("unreachable")  # pragma: no cover

    def _call(self, fn: Callable[[], T]) -> T:
        """Run a Chroma call with retries; an unreachable server becomes StoreUnavailable."""
        try:
            return self._retry(fn)
        except Exception as exc:
            if self.is_server and _is_connection_error(exc):
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
            self._close_client(client)
            raise
        self._client = client
        if self._auto_import_spool:
            try:
                self.import_spool()
            except Exception as exc:  # noqa: BLE001 - opening must not fail because of an old spool
                warnings.warn(f"could not import the spool {self.spool_file}: {exc}; it is kept", stacklevel=3)

    def _open_collections(self, client: Any) -> None:
        listed = {getattr(c, "name", str(c)): c for c in self._call(client.list_collections)}
        names = set(listed)
        meta_name = self._name("meta")
        if meta_name in names:
            meta = dict(self._call(lambda: client.get_collection(meta_name, embedding_function=None)).metadata or {})
            if not meta.get(_META_MARK):
                raise StoreError(f"{self.location} is not an agentkd store (no meta): {meta_name} is not ours")
            found = int(meta.get("schema_version", 0))
            if found > SCHEMA_VERSION:
                raise StoreError(
                    f"the store at {self.location} has schema_version {found}, but this agentkd supports up to "
                    f"schema_version {SCHEMA_VERSION}; upgrade agentkd to open it"
                )
            if meta.get("embedder") and meta["embedder"] != self.embedder:
                raise StoreError(
                    f"the store at {self.location} was embedded with {meta['embedder']!r}, not {self.embedder!r}; "
                    "open it with the same embedding_function (vectors of different embedders do not compare)"
                )
        else:
            ours = {self._name(kind) for kind in ("trajectories", "steps", "principles")} & names
            # Another prefix's agentkd store may share the folder; any other Chroma data may not.
            other_stores = any(
                name.endswith("_meta") and (getattr(col, "metadata", None) or {}).get(_META_MARK)
                for name, col in listed.items()
            )
            if ours or (names and self.path is not None and not other_stores):
                raise StoreError(f"{self.location} is not an agentkd store (no meta)")
            if not self.create:
                raise StoreError(
                    f"no agentkd store with prefix {self.prefix!r} at {self.location}; pass create=True to create one"
                )
            meta = {
                _META_MARK: True,
                "schema_version": SCHEMA_VERSION,
                "embedder": self.embedder,
                "created_at": datetime.now(UTC).isoformat(),
            }
            self._call(lambda: client.get_or_create_collection(meta_name, metadata=meta, embedding_function=None))
        self.meta = meta
        ef = self.embedding_function
        for kind in ("trajectories", "steps", "principles"):
            name = self._name(kind)
            self._collections[kind] = self._call(
                lambda name=name: client.get_or_create_collection(
                    name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=ef
                )
            )
        self._max_batch = max(1, int(self._call(client.get_max_batch_size)))

    @staticmethod
    def _close_client(client: Any) -> None:
        close = getattr(client, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    def close(self) -> None:
        """Release the Chroma client (the files of an embedded store can then be moved or deleted)."""
        if self._client is not None:
            self._close_client(self._client)
        self._client = None
        self._collections = {}

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
        trajectories = self._col("trajectories")
        steps = self._col("steps")
        documents = {traj.trajectory_id: traj.to_json() for traj in batch}
        ids = list(documents)
        stored: dict[str, str] = {}
        for chunk in _chunks(ids, self._max_batch):
            got = self._call(lambda chunk=chunk: trajectories.get(ids=list(chunk), include=["documents"]))
            stored.update(zip(got["ids"], got["documents"], strict=True))
        todo = [traj for traj in batch if stored.get(traj.trajectory_id) != documents[traj.trajectory_id]]
        if not todo:
            return
        # Steps left from an earlier, longer version of a trajectory (or a killed run) go first.
        todo_ids = [traj.trajectory_id for traj in todo]
        new_step_ids = {_step_id(traj.trajectory_id, step.index) for traj in todo for step in traj.steps}
        stale: list[str] = []
        for chunk in _chunks(todo_ids, 500):
            got = self._call(
                lambda chunk=chunk: steps.get(where={"trajectory_id": {"$in": list(chunk)}}, include=[])
            )
            stale.extend(step_id for step_id in got["ids"] if step_id not in new_step_ids)
        for chunk in _chunks(stale, self._max_batch):
            self._call(lambda chunk=chunk: steps.delete(ids=list(chunk)))

        step_ids, step_docs, step_meta = [], [], []
        for traj in todo:
            for step, context in _steps_of(traj):
                step_ids.append(_step_id(traj.trajectory_id, step.index))
                step_docs.append(context)
                step_meta.append(_step_metadata(traj, step))
        step_vectors = self._embed(step_docs)
        goal_vectors = self._embed([traj.goal for traj in todo])
        for start in range(0, len(step_ids), self._max_batch):
            end = start + self._max_batch
            self._call(
                lambda s=start, e=end: steps.upsert(
                    ids=step_ids[s:e], embeddings=step_vectors[s:e], documents=step_docs[s:e], metadatas=step_meta[s:e]
                )
            )
        # The trajectory record last: its presence means all its steps are in.
        for start in range(0, len(todo), self._max_batch):
            part = todo[start : start + self._max_batch]
            self._call(
                lambda part=part, s=start: trajectories.upsert(
                    ids=[traj.trajectory_id for traj in part],
                    embeddings=goal_vectors[s : s + len(part)],
                    documents=[documents[traj.trajectory_id] for traj in part],
                    metadatas=[_trajectory_metadata(traj) for traj in part],
                )
            )

    def delete(self, trajectory_ids: str | Iterable[str]) -> None:
        """Remove trajectories and their steps (ids that are not there are ignored)."""
        ids = [trajectory_ids] if isinstance(trajectory_ids, str) else list(trajectory_ids)
        if not ids:
            return
        trajectories, steps = self._col("trajectories"), self._col("steps")
        for chunk in _chunks(ids, 500):
            self._call(lambda chunk=chunk: trajectories.delete(ids=list(chunk)))
            self._call(lambda chunk=chunk: steps.delete(where={"trajectory_id": {"$in": list(chunk)}}))

    # ---- spool ------------------------------------------------------------------------------------

    def _spool(self, batch: list[Trajectory]) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        _append_bytes(self.spool_file, "".join(traj.to_json() + "\n" for traj in batch).encode("utf-8"))

    def import_spool(self) -> int:
        """Upsert the trajectories spooled during an outage; returns how many were imported.

        The spool file is claimed (renamed) first, so recorders can keep appending meanwhile, and
        removed only after every trajectory in it was written. Lines that do not parse (a write cut
        short by a crash) are moved to ``{prefix}.jsonl.rejected`` with a warning.
        """
        if not self.spool_dir.is_dir():
            return 0
        claims = [path for path in self.spool_dir.glob(f"{self.prefix}.jsonl.importing-*") if _claim_is_stale(path)]
        if self.spool_file.exists():
            claim = self.spool_file.with_name(f"{self.spool_file.name}.importing-{os.getpid()}-{uuid.uuid4().hex[:8]}")
            try:
                os.replace(self.spool_file, claim)
                claims.append(claim)
            except FileNotFoundError:  # another process claimed it first
                pass
        imported = 0
        for claim in claims:
            try:
                imported += self._import_claim(claim)
            except BaseException:
                _append_file(claim, self.spool_file)  # give the lines back for the next try
                claim.unlink(missing_ok=True)
                raise
            claim.unlink(missing_ok=True)
        return imported

    def _import_claim(self, claim: Path) -> int:
        good: list[Trajectory] = []
        rejected: list[str] = []
        with claim.open("r", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    good.append(Trajectory.from_json(line))
                except (ValidationError, ValueError):
                    rejected.append(line if line.endswith("\n") else line + "\n")
        if rejected:
            rejected_file = self.spool_file.with_name(f"{self.spool_file.name}.rejected")
            with rejected_file.open("a", encoding="utf-8") as handle:
                handle.writelines(rejected)
            warnings.warn(f"{len(rejected)} unreadable spool line(s) moved to {rejected_file}", stacklevel=3)
        for chunk in _chunks(good, _IMPORT_CHUNK):
            self._write(list({traj.trajectory_id: traj for traj in chunk}.values()))
        return len(good)

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
        for chunk in _chunks(wanted, self._max_batch):
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
        where = _where(filters)
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
        for page in self._page("trajectories", ["documents"], batch_size, _where(filters)):
            for document in page["documents"]:
                yield Trajectory.from_json(document)

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
        where = _where(filters, keys)
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
            kept = [row for row in rows if _matches(row[2], filters)][:k]
            if len(kept) < k and len(rows) >= fetch:  # more matches may lie beyond the candidates
                again.append(position)
            results.append(kept)
        if again:
            for position, rows in zip(again, search([vectors[i] for i in again], k, where), strict=True):
                results[position] = rows
        return results

    def stats(self, **filters: Any) -> dict[str, Any]:
        """Counts of the (filtered) trajectories by env, split, task_type, policy and success.

        Returns ``{"trajectories", "steps", "principles", "success_rate", "env": {...},
        "split": {...}, "task_type": {...}, "policy": {"kind:name": n}, "success": {"true": n,
        "false": n}}``; ``steps`` sums ``num_steps`` of the counted trajectories.
        """
        counters: dict[str, Counter[str]] = {key: Counter() for key in ("env", "split", "task_type", "policy")}
        success: Counter[str] = Counter({"true": 0, "false": 0})
        total = steps = 0
        for page in self._page("trajectories", ["metadatas"], 5000, _where(filters)):
            for metadata in page["metadatas"]:
                total += 1
                steps += int(metadata.get("num_steps", 0))
                for key in ("env", "split", "task_type"):
                    counters[key][str(metadata.get(key, ""))] += 1
                counters["policy"][f"{metadata.get('policy_kind', '')}:{metadata.get('policy_name', '')}"] += 1
                success["true" if metadata.get("success") else "false"] += 1
        principles = self._col("principles")
        return {
            "trajectories": total,
            "steps": steps,
            "principles": int(self._call(principles.count)),
            "success_rate": success["true"] / total if total else 0.0,
            **{key: dict(sorted(counter.items())) for key, counter in counters.items()},
            "success": dict(success),
        }

    # ---- files and datasets ----------------------------------------------------------------------

    def export_jsonl(self, path: str | Path, **filters: Any) -> int:
        """Write the (filtered) trajectories to ``path``, one JSON per line; returns the count."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        written = 0
        try:
            with tmp.open("w", encoding="utf-8") as handle:
                for traj in self.iterate(**filters):
                    handle.write(traj.to_json() + "\n")
                    written += 1
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return written

    def import_jsonl(self, path: str | Path) -> int:
        """Upsert every trajectory of a JSONL file; returns the count.

        The whole file is validated first, so a bad line (:class:`BadRecordError` naming
        ``file:line``) imports nothing. Blank lines are skipped.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such JSONL file: {path}")
        total = sum(1 for _ in _parse_jsonl(path))
        chunk: list[Trajectory] = []
        for _, traj in _parse_jsonl(path):
            chunk.append(traj)
            if len(chunk) >= _IMPORT_CHUNK:
                self.upsert(chunk)
                chunk = []
        if chunk:
            self.upsert(chunk)
        return total

    def to_dataset(self, **filters: Any) -> datasets.Dataset:
        """The (filtered) trajectories as a Hugging Face ``datasets.Dataset``, one row per trajectory.

        Columns: ``trajectory_id``, ``goal`` and the flat metadata (``env``, ``split``,
        ``task_type``, ``task_id``, ``success``, ``reward``, ``num_steps``, ``policy_kind``,
        ``policy_name``, ``seed``, ``prompt_tokens``, ``completion_tokens``, ``cost_usd``,
        ``evaluation``, ``schema_version``); ``steps``, a list of
        ``{index, observation, thought, action, next_observation, reward, done, valid, deferred}``
        (the fields training needs, with a fixed Arrow type); and ``trajectory``, the full JSON,
        so ``Trajectory.from_json(row["trajectory"])`` recovers everything (candidates, info...).
        """
        import datasets

        step_features = {
            "index": datasets.Value("int64"),
            "observation": datasets.Value("string"),
            "thought": datasets.Value("string"),
            "action": datasets.Value("string"),
            "next_observation": datasets.Value("string"),
            "reward": datasets.Value("float64"),
            "done": datasets.Value("bool"),
            "valid": datasets.Value("bool"),
            "deferred": datasets.Value("bool"),
        }
        features = datasets.Features(
            {
                "trajectory_id": datasets.Value("string"),
                "goal": datasets.Value("string"),
                "env": datasets.Value("string"),
                "split": datasets.Value("string"),
                "task_type": datasets.Value("string"),
                "task_id": datasets.Value("string"),
                "success": datasets.Value("bool"),
                "reward": datasets.Value("float64"),
                "num_steps": datasets.Value("int64"),
                "policy_kind": datasets.Value("string"),
                "policy_name": datasets.Value("string"),
                "seed": datasets.Value("int64"),
                "prompt_tokens": datasets.Value("int64"),
                "completion_tokens": datasets.Value("int64"),
                "cost_usd": datasets.Value("float64"),
                "evaluation": datasets.Value("bool"),
                "schema_version": datasets.Value("int64"),
                "steps": datasets.List(step_features),
                "trajectory": datasets.Value("string"),
            }
        )
        rows = []
        for traj in self.iterate(**filters):
            metadata = _trajectory_metadata(traj)
            metadata.pop("started_at")
            rows.append(
                {
                    "trajectory_id": traj.trajectory_id,
                    "goal": traj.goal,
                    **metadata,
                    "steps": [{key: getattr(step, key) for key in step_features} for step in traj.steps],
                    "trajectory": traj.to_json(),
                }
            )
        if not rows:
            return datasets.Dataset.from_dict({name: [] for name in features}, features=features)
        return datasets.Dataset.from_list(rows, features=features)

    # ---- principles ------------------------------------------------------------------------------

    def upsert_principles(self, principles: Principle | Iterable[Principle]) -> int:
        """Write principles (idempotent by ``principle_id``; embedding = the principle's text)."""
        batch = [principles] if isinstance(principles, Principle) else list(principles)
        by_id = {principle.principle_id: principle for principle in batch}
        if not by_id:
            return 0
        col = self._col("principles")
        items = list(by_id.values())
        vectors = self._embed([principle.text for principle in items])
        for start in range(0, len(items), self._max_batch):
            part = items[start : start + self._max_batch]
            self._call(
                lambda part=part, s=start: col.upsert(
                    ids=[principle.principle_id for principle in part],
                    embeddings=vectors[s : s + len(part)],
                    documents=[principle.to_json() for principle in part],
                    metadatas=[_principle_metadata(principle) for principle in part],
                )
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
        for chunk in _chunks(wanted, self._max_batch):
            got = self._call(lambda chunk=chunk: col.get(ids=list(chunk), include=["documents"]))
            found.update((i, Principle.from_json(doc)) for i, doc in zip(got["ids"], got["documents"], strict=True))
        return found

    def iterate_principles(self, batch_size: int = 500, **filters: Any) -> Iterator[Principle]:
        """Every principle matching the filters (:data:`PRINCIPLE_FILTER_KEYS`; e.g. ``status="active"``)."""
        for page in self._page("principles", ["documents"], batch_size, _where(filters, PRINCIPLE_FILTER_KEYS)):
            for document in page["documents"]:
                yield Principle.from_json(document)

    def count_principles(self, **filters: Any) -> int:
        """Number of principles matching the filters."""
        where = _where(filters, PRINCIPLE_FILTER_KEYS)
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
        col = self._col("principles")
        for chunk in _chunks(ids, self._max_batch):
            self._call(lambda chunk=chunk: col.delete(ids=list(chunk)))


# ---- spool helpers ------------------------------------------------------------------------------


def _claim_is_stale(path: Path) -> bool:
    """A claimed spool file whose importing process is gone (killed mid-import)."""
    try:
        pid = int(path.name.rsplit(".importing-", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _append_bytes(target: Path, data: bytes) -> None:
    """Append with O_APPEND and fsync: concurrent recorders do not interleave their lines."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _append_file(source: Path, target: Path) -> None:
    if source.exists():
        _append_bytes(target, source.read_bytes())
