"""Retrieval over a document corpus: a Chroma collection, optionally fused with BM25.

    from agentkd.tools.retrieval import CorpusIndex, format_hits, load_corpus
    index = CorpusIndex("corpora/wiki")            # embedded folder (or "http://host:8000")
    index.add(load_corpus("wiki.jsonl"))             # idempotent: unchanged documents are skipped
    print(format_hits(index.search("Who founded Zorvex Labs?", k=3)))
    tool = index.as_tool(k=3)                        # LangChain StructuredTool named "search"

Dense retrieval with a small embedder is weak on rare names (a made-up name is split into
word pieces that mean nothing), which is exactly what multi-hop questions ask about. With
``hybrid=True`` the embedding ranking is fused with a BM25 ranking by reciprocal-rank fusion, so an
exact name match still surfaces. BM25 (with a copy of every document) lives in memory and is rebuilt
from the collection whenever an index is opened; ``hybrid=False`` keeps nothing in memory, for
corpora too large for that.

Importing this module does not import chromadb, torch or langchain; they load on first use.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agentkd.errors import AgentKDError, FileFormatError

__all__ = [
    "BM25",
    "CorpusFormatError",
    "CorpusIndex",
    "CorpusIndexError",
    "Document",
    "document_from_json",
    "SearchHit",
    "embedder_name",
    "format_hits",
    "index_corpus",
    "load_corpus",
    "tokenize",
]

_TEXT_SUFFIXES = (".txt", ".md")
_RRF_K = 60  # the constant of reciprocal-rank fusion (Cormack et al.): damps the weight of the top ranks
_MIN_DEPTH = 20  # candidates taken from each ranking before fusing, at least
_MAX_TOOL_K = 10  # the model may ask for more documents, but not flood its context
_META_MARK = "agentkd_corpus"  # collection metadata key that marks a corpus collection
_STOPWORDS = frozenset(
    "a an and are as at be by did does for from had has have he her his in is it its of on or she that the their "
    "they this to was were what when where which who whom whose why with".split()
)


# ---- documents and errors ----------------------------------------------------------------------


class Document(BaseModel):
    """One retrievable unit (a file, a paragraph): its id is the upsert key."""

    id: str
    title: str
    text: str


class SearchHit(BaseModel):
    """One search result; ``score`` is higher for better hits (fused RRF score or cosine similarity)."""

    id: str
    title: str
    text: str
    score: float


class CorpusFormatError(FileFormatError):
    """A corpus file or line is not a document; names the file and, for JSONL, the line number."""

    def __init__(self, path: Path, line: int | None, reason: str) -> None:
        super().__init__(path, line, f"not a corpus document: {reason}")


class CorpusIndexError(AgentKDError, RuntimeError):
    """The location is not a usable corpus index (other embedder, foreign folder, bad URL...)."""


# ---- loading ------------------------------------------------------------------------------------


def _joined(value: Any) -> str | None:
    # HotpotQA stores a paragraph as a list of sentences whose spacing is part of each sentence.
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return "".join(value) if any(part[:1].isspace() for part in value[1:]) else " ".join(value)
    return None


def document_from_json(record: Any) -> Document:
    """A document from one JSON record: ``{"id", "title", "text"}``, HotpotQA's ``{"title", "sentences"}`` or a
    ``[title, sentences]`` context pair; ValueError says what is wrong with it."""
    if isinstance(record, list) and len(record) == 2 and isinstance(record[0], str):
        record = {"title": record[0], "sentences": record[1]}  # a HotpotQA context pair
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    title = record.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ValueError('missing "title" (a non-empty string)')
    for key in ("text", "sentences", "paragraph"):
        if key in record:
            text = _joined(record[key])
            if text is None:
                raise ValueError(f'"{key}" must be a string or a list of strings')
            break
    else:
        raise ValueError('missing "text" (or HotpotQA "sentences"/"paragraph")')
    doc_id = record.get("id", record.get("_id", title))
    return Document(id=str(doc_id), title=title.strip(), text=text.strip())


def _load_jsonl(path: Path) -> Iterator[Document]:
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield document_from_json(json.loads(line))
            except ValueError as exc:  # json.JSONDecodeError is a ValueError too
                raise CorpusFormatError(path, number, str(exc)) from exc


def _load_folder(path: Path) -> Iterator[Document]:
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _TEXT_SUFFIXES)
    for file in files:
        try:
            text = file.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError as exc:
            raise CorpusFormatError(file, None, f"not UTF-8 text ({exc})") from exc
        if text:  # an empty file is not a document, and not worth stopping for
            yield Document(id=file.relative_to(path).with_suffix("").as_posix(), title=file.stem, text=text)


def load_corpus(path: str | Path) -> list[Document]:
    """Documents of a folder of ``.txt``/``.md`` files (title = file stem) or of a JSONL file.

    JSONL lines are ``{"id", "title", "text"}``; HotpotQA-style ``{"title", "sentences"}`` or
    ``{"title", "paragraph"}`` lines (and ``[title, sentences]`` pairs) are accepted too, the id then
    being the title. A repeated id keeps its first document. A malformed line raises
    :class:`CorpusFormatError` with the file and line number.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        documents: Iterable[Document] = _load_folder(path)
    elif path.is_file():
        documents = _load_jsonl(path)
    else:
        raise CorpusFormatError(path, None, "no such file or folder (give a folder of .txt/.md files or a .jsonl file)")
    unique: dict[str, Document] = {}
    for document in documents:
        unique.setdefault(document.id, document)
    return list(unique.values())


# ---- BM25 ---------------------------------------------------------------------------------------


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens without the commonest function words (what BM25 matches on)."""
    return [token for token in re.findall(r"\w+", text.lower()) if token not in _STOPWORDS]


class BM25:
    """Okapi BM25 over documents kept in memory; documents can be replaced by id."""

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self._terms: dict[str, Counter[str]] = {}
        self._postings: dict[str, list[tuple[str, int]]] | None = None  # built lazily after changes
        self._lengths: dict[str, int] = {}
        self._avgdl = 0.0

    def __len__(self) -> int:
        return len(self._terms)

    def set(self, doc_id: str, text: str) -> None:
        self._terms[doc_id] = Counter(tokenize(text))
        self._postings = None

    def _build(self) -> dict[str, list[tuple[str, int]]]:
        postings: dict[str, list[tuple[str, int]]] = {}
        for doc_id, terms in self._terms.items():
            for term, count in terms.items():
                postings.setdefault(term, []).append((doc_id, count))
        self._lengths = {doc_id: sum(terms.values()) for doc_id, terms in self._terms.items()}
        self._avgdl = sum(self._lengths.values()) / max(1, len(self._lengths))
        self._postings = postings
        return postings

    def top(self, query: str, n: int) -> list[tuple[str, float]]:
        """The ``n`` best (id, score) pairs; documents sharing no query term are left out."""
        postings = self._postings if self._postings is not None else self._build()
        total = len(self._terms)
        scores: dict[str, float] = {}
        for term in set(tokenize(query)):
            found = postings.get(term, ())
            if not found:
                continue
            idf = math.log(1 + (total - len(found) + 0.5) / (len(found) + 0.5))
            for doc_id, count in found:
                norm = self.k1 * (1 - self.b + self.b * self._lengths[doc_id] / (self._avgdl or 1))
                scores[doc_id] = scores.get(doc_id, 0.0) + idf * count * (self.k1 + 1) / (count + norm)
        return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:n]


# ---- the index ----------------------------------------------------------------------------------


def _embed_text(document: Document) -> str:
    # The title carries the entity name; embedding it with the text lets the name itself match.
    return f"{document.title}. {document.text}"


def embedder_name(embedding_function: Any) -> str:
    """The name a Chroma embedding function is recorded under (what an index checks on reopening)."""
    from agentkd.store.chroma import embedder_name as shared_rule  # one rule for the store and the corpus

    return shared_rule(embedding_function)


def _hit_document(doc_id: str, text: str | None, metadata: Any) -> Document:
    return Document(id=doc_id, title=str((metadata or {}).get("title", "")), text=text or "")


def _close(client: Any, folder: str | None) -> None:
    from agentkd.store.chroma import close_client

    close_client(client)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


class CorpusIndex:
    """A searchable corpus in a Chroma collection, with BM25 fused in when ``hybrid``.

    Args:
        location: a folder (embedded ``chromadb.PersistentClient``; created when new or empty), an
            ``http(s)://host:port`` Chroma server, or ``None`` for a private temporary folder that is
            deleted when the index is closed or garbage-collected.
        collection: Chroma collection name; several corpora can share a folder or server.
        embedding_function: any Chroma embedding function, or the name of one agentkd builds
            (``"minilm"``, ``"static"``); ``None`` opens an existing collection with the embedder it
            records and creates a new one with the offline MiniLM. A collection remembers its
            embedder and refuses to open with another one.
        hybrid: fuse the embedding ranking with BM25 by reciprocal-rank fusion.
        create: create the collection (and folder) when missing; otherwise :class:`CorpusIndexError`.

    With ``hybrid``, BM25 reflects the documents present when the index opened plus those added
    through it; call :meth:`refresh` after other writers changed a shared server collection.
    """

    def __init__(
        self,
        location: str | Path | None,
        *,
        collection: str = "corpus",
        embedding_function: Any | None = None,
        hybrid: bool = True,
        create: bool = True,
    ) -> None:
        from agentkd.store.chroma import make_chroma_client

        self.collection_name = collection
        self.hybrid = hybrid
        self._tmp = tempfile.mkdtemp(prefix="agentkd-corpus-") if location is None else None
        self.location: str = str(location) if location is not None else str(self._tmp)
        self._client = make_chroma_client(
            self.location, create=create, kind="agentkd corpus index", error=CorpusIndexError
        )
        self._finalizer = weakref.finalize(self, _close, self._client, self._tmp)
        try:
            self.embedding_function = self._choose_embedder(embedding_function)
            self.embedder = embedder_name(self.embedding_function)
            self._collection = self._open_collection(create)
            self._max_batch = max(1, int(self._client.get_max_batch_size()))
            self._documents: dict[str, Document] = {}
            self._bm25 = BM25()
            self.refresh()
        except BaseException:
            self.close()
            raise

    def _choose_embedder(self, choice: Any) -> Any:
        """The given embedder, else the one an existing collection records, else the offline MiniLM."""
        from agentkd.store.chroma import collection_marks, list_collections
        from agentkd.store.embedder_choice import EmbedderChoiceError, resolve_embedding_function

        recorded = None
        if choice is None and self.collection_name in list_collections(self._client):
            recorded = collection_marks(self._client, self.collection_name).get("embedder")
        try:
            return resolve_embedding_function(
                choice if choice is not None or recorded else "minilm",
                recorded=recorded,
                where=f"the corpus {self.collection_name!r} at {self.location}",
            )
        except EmbedderChoiceError as exc:
            raise CorpusIndexError(str(exc)) from exc

    def _open_collection(self, create: bool) -> Any:
        from agentkd.store.chroma import collection_marks, cosine_collection, list_collections

        if self.collection_name in list_collections(self._client):
            # Check the marks before Chroma compares embedders, so a mismatch gets our message.
            found = collection_marks(self._client, self.collection_name)
            if not found.get(_META_MARK):
                raise CorpusIndexError(f"collection {self.collection_name!r} at {self.location} is not a corpus index")
            if found.get("embedder") != self.embedder:
                raise CorpusIndexError(
                    f"the corpus {self.collection_name!r} at {self.location} was embedded with "
                    f"{found.get('embedder')!r}, not {self.embedder!r}; open it with the same embedding_function "
                    "or index it into a new collection"
                )
        elif not create:
            raise CorpusIndexError(f"no corpus collection {self.collection_name!r} at {self.location}")
        return cosine_collection(
            self._client,
            self.collection_name,
            self.embedding_function,
            metadata={_META_MARK: True, "embedder": self.embedder},
        )

    def refresh(self) -> None:
        """Re-read every document from the collection into BM25 (nothing to do when not ``hybrid``)."""
        self._documents, self._bm25 = {}, BM25()
        if not self.hybrid:
            return
        total = self._collection.count()
        for offset in range(0, total, self._max_batch):
            got = self._collection.get(include=["documents", "metadatas"], limit=self._max_batch, offset=offset)
            for doc_id, text, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
                self._remember(_hit_document(doc_id, text, meta))

    def _remember(self, document: Document) -> None:
        if self.hybrid:
            self._documents[document.id] = document
            self._bm25.set(document.id, f"{document.title} {document.title} {document.text}")  # titles weigh double

    def _stored(self, ids: Sequence[str]) -> dict[str, Document]:
        """The stored versions of some ids (from memory when hybrid, else from the collection)."""
        if self.hybrid:
            return {i: self._documents[i] for i in ids if i in self._documents}
        got = self._collection.get(ids=list(ids), include=["documents", "metadatas"])
        rows = zip(got["ids"], got["documents"], got["metadatas"], strict=True)
        return {doc_id: _hit_document(doc_id, text, meta) for doc_id, text, meta in rows}

    def __len__(self) -> int:
        return len(self._documents) if self.hybrid else int(self._collection.count())

    def __repr__(self) -> str:
        return f"CorpusIndex({self.location!r}, collection={self.collection_name!r}, hybrid={self.hybrid})"

    def close(self) -> None:
        """Release the Chroma client (and delete the folder of a temporary index)."""
        self._finalizer()

    def __enter__(self) -> CorpusIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writing ----------------------------------------------------------------------------------

    def add(self, documents: Iterable[Document], batch_size: int = 256) -> int:
        """Upsert documents by id; returns how many were new or changed (unchanged ones are not re-embedded)."""
        from agentkd.store.chroma import chunks, upsert_chunked

        by_id = {document.id: document for document in documents}  # the last version of an id wins
        written = 0
        for batch in chunks(list(by_id.values()), max(1, min(batch_size, self._max_batch))):
            stored = self._stored([doc.id for doc in batch])
            chunk = [doc for doc in batch if stored.get(doc.id) != doc]
            if not chunk:
                continue
            written += len(chunk)
            embeddings = self.embedding_function([_embed_text(doc) for doc in chunk])
            upsert_chunked(
                self._collection,
                ids=[doc.id for doc in chunk],
                embeddings=[list(map(float, vector)) for vector in embeddings],
                documents=[doc.text for doc in chunk],
                metadatas=[{"title": doc.title} for doc in chunk],
                max_batch=self._max_batch,
            )
            for doc in chunk:
                self._remember(doc)
        return written

    # ---- reading ----------------------------------------------------------------------------------

    def _dense(self, query: str, depth: int) -> list[SearchHit]:
        vector = self.embedding_function([query])[0]
        include = ["distances"] if self.hybrid else ["distances", "documents", "metadatas"]
        result = self._collection.query(query_embeddings=[list(map(float, vector))], n_results=depth, include=include)
        ids, distances = result["ids"][0], result["distances"][0]
        texts = result["documents"][0] if not self.hybrid else [None] * len(ids)
        metas = result["metadatas"][0] if not self.hybrid else [None] * len(ids)
        hits = []
        for doc_id, dist, text, meta in zip(ids, distances, texts, metas, strict=True):
            doc = self._documents.get(doc_id) if self.hybrid else _hit_document(doc_id, text, meta)
            if doc is not None:  # hybrid: a document another writer added since refresh() is not known here
                hits.append(SearchHit(id=doc.id, title=doc.title, text=doc.text, score=1.0 - float(dist)))
        return hits

    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        """The ``k`` best documents for ``query``, best first."""
        total = len(self)
        if k <= 0 or total == 0 or not query.strip():
            return []
        depth = min(total, max(4 * k, _MIN_DEPTH))
        dense = self._dense(query, depth)
        if not self.hybrid:
            return dense[:k]
        fused: dict[str, float] = {}
        for ranking in ([hit.id for hit in dense], [doc_id for doc_id, _ in self._bm25.top(query, depth)]):
            for rank, doc_id in enumerate(ranking, start=1):
                fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (_RRF_K + rank)
        ranked = sorted(fused.items(), key=lambda item: -item[1])[:k]  # stable: ties keep the dense order
        return [SearchHit(**self._documents[doc_id].model_dump(), score=score) for doc_id, score in ranked]

    def as_tool(self, k: int = 3) -> Any:
        """A LangChain ``StructuredTool`` named ``search`` over this index (``k`` documents by default)."""
        from langchain_core.tools import StructuredTool

        def search(query: str, k: int = k) -> str:
            return format_hits(self.search(query, k=max(1, min(int(k), _MAX_TOOL_K))))

        return StructuredTool.from_function(
            func=search,
            name="search",
            description=(
                f"Search the document collection. Returns the top k documents (default {k}, at most {_MAX_TOOL_K})"
                ' as numbered lines "[i] Title: text". Query with a name or a few keywords, e.g. search("Zorvex'
                ' Labs"); to answer a multi-hop question, search for each entity in turn.'
            ),
        )


def format_hits(hits: Sequence[SearchHit], max_chars: int | None = 600) -> str:
    """Compact text of search results: one ``[i] Title: text`` line per hit (text cut at ``max_chars``)."""
    if not hits:
        return "No documents found."
    lines = []
    for number, hit in enumerate(hits, start=1):
        text = " ".join(hit.text.split())
        if max_chars is not None and len(text) > max_chars:
            text = text[: max_chars - 3].rstrip() + "..."
        lines.append(f"[{number}] {hit.title}: {text}")
    return "\n".join(lines)


def index_corpus(
    path: str | Path, location: str | Path | None, *, collection: str = "corpus", **kwargs: Any
) -> CorpusIndex:
    """Load a corpus (:func:`load_corpus`) and upsert it into a :class:`CorpusIndex` at ``location``."""
    index = CorpusIndex(location, collection=collection, **kwargs)
    try:
        index.add(load_corpus(path))
    except BaseException:
        index.close()
        raise
    return index
