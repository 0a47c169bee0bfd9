"""The generated world as a corpus, and its search index cached on disk.

The index of a corpus lives in ``$AGENTKD_CACHE/corpora/<hash>`` (default cache
``$XDG_CACHE_HOME/agentkd`` or ``~/.cache/agentkd``), where the hash covers the documents and the
embedder, so a changed generator or embedder gets a new folder instead of stale vectors. It is
built in a temporary sibling folder and renamed into place when complete: a half-built index is
never opened, and when two processes build at once the first rename wins and the other process
drops its copy and opens the winner's.

:func:`tools` gives an episode's sandbox its ``search`` function, over one index shared by the
process (the generated corpus, or the one given to :func:`use_index`, e.g. a HotpotQA corpus).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentkd.schema import Task
from agentkd.tools.retrieval import CorpusIndex, Document, embedder_name, format_hits

from .hotpot import split_documents
from .world import WORLD_SEED, build_world

__all__ = ["CACHE_ENV", "cache_dir", "corpus_documents", "corpus_hash", "corpus_index", "shared_index",
           "split_index", "tools", "use_index"]

#: Environment variable that moves the agentkd cache (corpus indexes live under ``corpora/``).
CACHE_ENV = "AGENTKD_CACHE"
_FORMAT = 1  # bump when the index layout changes, so old cache folders are not reused
_MAX_K = 10  # documents one search may return to the agent
_shared: CorpusIndex | None = None
_split_indexes: dict[str, CorpusIndex] = {}
_shared_lock = threading.Lock()


def cache_dir() -> Path:
    """The agentkd cache folder: ``$AGENTKD_CACHE``, else ``$XDG_CACHE_HOME/agentkd`` or ``~/.cache/agentkd``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "agentkd"


def corpus_documents(world_seed: int = WORLD_SEED) -> list[Document]:
    """One document per entity of the world (id = entity id, title = its name)."""
    world = build_world(world_seed)
    return [Document(id=e.id, title=e.name, text=world.document(e.id)) for e in world.entities.values()]


def corpus_hash(documents: list[Document], embedder: str) -> str:
    """A short hash of the documents and the embedder name: the cache key of their index."""
    digest = hashlib.sha256(f"{_FORMAT}\n{embedder}\n".encode())
    for doc in documents:
        digest.update(json.dumps([doc.id, doc.title, doc.text], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def corpus_index(
    location: str | Path | None = None,
    *,
    world_seed: int = WORLD_SEED,
    documents: list[Document] | None = None,
    embedding_function: Any | None = None,
    hybrid: bool = True,
) -> CorpusIndex:
    """A :class:`CorpusIndex` holding the world's documents (or ``documents``), built on first use.

    ``location=None`` uses the on-disk cache (see the module docstring); a folder or a Chroma server
    URL is filled in place (an idempotent upsert: documents already there are not re-embedded). Each
    call opens a new index; keep the one you get for a whole run.
    """
    documents = corpus_documents(world_seed) if documents is None else documents
    if embedding_function is None:
        from agentkd.store.embedder import default_embedding_function

        embedding_function = default_embedding_function()
    if location is None:
        location = cache_dir() / "corpora" / corpus_hash(documents, embedder_name(embedding_function))
        if not (location / "chroma.sqlite3").is_file():
            _build(location, documents, embedding_function)
    index = CorpusIndex(location, embedding_function=embedding_function, hybrid=hybrid)
    try:
        index.add(documents)  # nothing to do for a complete index; fills in a partial folder or server
    except BaseException:
        index.close()
        raise
    return index


def _build(target: Path, documents: list[Document], embedding_function: Any) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.parent / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with CorpusIndex(scratch, embedding_function=embedding_function, hybrid=False) as index:
            index.add(documents)
        try:
            os.rename(scratch, target)
        except OSError:
            if not (target / "chroma.sqlite3").is_file():
                raise  # not a lost race: a real error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def use_index(index: CorpusIndex | None) -> None:
    """Make ``index`` the corpus that :func:`tools` searches (``None``: back to the generated corpus)."""
    global _shared
    with _shared_lock:
        _shared = index


def shared_index() -> CorpusIndex:
    """The process's index for :func:`tools`: the one given to :func:`use_index`, else the generated corpus
    (:func:`corpus_index` with the default cache, opened once)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = corpus_index()
            # Load the embedder now: a first query pays seconds for it, and tool calls count against the
            # sandbox's wall-clock limit of the step that makes them.
            _shared.search("warm up", k=1)
        return _shared


def split_index(source: str) -> CorpusIndex:
    """The index of a split path's corpus (:func:`~environments.qa.hotpot.split_documents`), opened once per process."""
    with _shared_lock:
        if source not in _split_indexes:
            index = corpus_index(documents=split_documents(source))
            index.search("warm up", k=1)  # see shared_index
            _split_indexes[source] = index
        return _split_indexes[source]


def tools(task: Task) -> dict[str, Callable[..., Any]]:
    """The host-side tools of a QA episode's sandbox: ``search`` over the task's corpus.

    That is the corpus of the split path the task came from (``params["corpus"]``), else :func:`shared_index`.
    """
    source = task.params.get("corpus")
    index = split_index(source) if source else shared_index()

    def search(query: str, k: int = 3) -> str:
        """Search the knowledge base; returns the top k documents as "[i] Title: text" lines (print it)."""
        return format_hits(index.search(str(query), k=max(1, min(int(k), _MAX_K))))

    return {"search": search}
