"""The Chroma layer shared by the experience store and the corpus index.

A client for a folder (embedded ``chromadb.PersistentClient``) or an ``http(s)://host:port`` URL
(``chromadb.HttpClient``), retries with exponential backoff on connection errors, the marks a
collection carries in its metadata, cosine collections and chunked upserts.

Importing this module does not import chromadb (it loads when a client is made).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from agentkd.errors import AgentKDError

__all__ = [
    "RetryPolicy",
    "StoreError",
    "StoreUnavailable",
    "chunks",
    "close_client",
    "collection_marks",
    "cosine_collection",
    "embedder_name",
    "is_connection_error",
    "list_collections",
    "make_chroma_client",
    "retry_call",
    "upsert_chunked",
]

T = TypeVar("T")

#: How a Chroma call is run: directly, or wrapped by a retrying caller such as ``ExperienceStore._call``.
Caller = Callable[[Callable[[], Any]], Any]


class StoreError(AgentKDError, RuntimeError):
    """The location is not a usable agentkd store (wrong folder, newer schema, other embedder...)."""


class StoreUnavailable(StoreError):
    """The Chroma server could not be reached (after retries)."""

    def __init__(self, message: str, *, url: str | None = None, spool_file: Path | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.spool_file = spool_file


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for Chroma calls: ``tries`` attempts, waiting ``delay_s`` then ×``backoff``."""

    tries: int = 5
    delay_s: float = 0.2
    backoff: float = 2.0
    max_delay_s: float = 5.0


def is_connection_error(exc: BaseException) -> bool:
    """Whether an exception means the Chroma server could not be reached (worth retrying)."""
    import httpx

    if isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError)):
        return True
    # chromadb turns a refused connection at client creation into this ValueError
    return isinstance(exc, ValueError) and "Could not connect to a Chroma server" in str(exc)


def retry_call(fn: Callable[[], T], policy: RetryPolicy) -> T:
    """Run ``fn``, retrying connection errors with the policy's backoff; other errors pass at once."""
    delay = policy.delay_s
    for attempt in range(1, max(1, policy.tries) + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt >= policy.tries or not is_connection_error(exc):
                raise
            time.sleep(delay)
            delay = min(delay * policy.backoff, policy.max_delay_s)
    raise AssertionError("unreachable")  # pragma: no cover


def _direct(fn: Callable[[], Any]) -> Any:
    return fn()


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def embedder_name(ef: Any) -> str:
    """The name a Chroma embedding function is recorded under (what a store or index checks on reopening)."""
    try:
        name = ef.name()
    except Exception:  # noqa: BLE001 - legacy embedding functions may not implement name()
        name = NotImplemented
    if not isinstance(name, str):
        name = f"{type(ef).__module__}.{type(ef).__qualname__}"
    return name


def make_chroma_client(
    location: str | Path,
    *,
    create: bool = True,
    call: Caller | None = None,
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


def close_client(client: Any) -> None:
    """Close a Chroma client, best effort (older clients have no ``close``)."""
    close = getattr(client, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


def list_collections(client: Any, call: Caller = _direct) -> dict[str, Any]:
    """The client's collections by name."""
    return {getattr(c, "name", str(c)): c for c in call(client.list_collections)}


def collection_marks(client: Any, name: str, call: Caller = _direct) -> dict[str, Any]:
    """The metadata of an existing collection, read without its embedding function, so the marks can be
    checked (which kind of collection, which embedder) before Chroma compares embedders itself."""
    return dict(call(lambda: client.get_collection(name, embedding_function=None)).metadata or {})


def cosine_collection(
    client: Any,
    name: str,
    embedding_function: Any,
    *,
    metadata: dict[str, Any] | None = None,
    call: Caller = _direct,
) -> Any:
    """Open or create a collection with cosine distance (``metadata`` marks a new one)."""
    extra = {} if metadata is None else {"metadata": metadata}
    return call(
        lambda: client.get_or_create_collection(
            name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=embedding_function, **extra
        )
    )


def upsert_chunked(
    collection: Any,
    *,
    ids: Sequence[str],
    embeddings: Sequence[Any],
    documents: Sequence[str],
    metadatas: Sequence[dict[str, Any]],
    max_batch: int,
    call: Caller = _direct,
) -> None:
    """Upsert parallel columns in slices of ``max_batch`` records (Chroma refuses bigger batches)."""
    for start in range(0, len(ids), max_batch):
        end = start + max_batch
        call(
            lambda s=start, e=end: collection.upsert(
                ids=list(ids[s:e]),
                embeddings=list(embeddings[s:e]),
                documents=list(documents[s:e]),
                metadatas=list(metadatas[s:e]),
            )
        )
