"""The experience store: recorded trajectories, their steps and principles on Chroma.

    from agentkd.store import ExperienceStore, step_context
    store = ExperienceStore()                      # embedded, in trajectories/store
    store = ExperienceStore("http://127.0.0.1:8000")  # a `chroma run` server
    store.upsert(trajectory)
    hits = store.query_steps(step_context(goal, history, observation), k=3, task_type="pick_and_place")

Importing this package does not import chromadb, torch or datasets; they load when a store opens
(``default_embedding_function`` loads chromadb when first accessed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .lock import StoreBusy
from .protocol import TrajectoryStore
from .store import (
    FILTER_KEYS,
    PRINCIPLE_FILTER_KEYS,
    BadRecordError,
    ExperienceStore,
    PrincipleHit,
    RetryPolicy,
    StepHit,
    StoreError,
    StoreUnavailable,
    TrajectoryHit,
    similarity_from_distance,
    step_context,
)

if TYPE_CHECKING:  # pragma: no cover
    from .embedder import MiniLMEmbeddingFunction, default_embedding_function

__all__ = [
    "FILTER_KEYS",
    "PRINCIPLE_FILTER_KEYS",
    "BadRecordError",
    "ExperienceStore",
    "MiniLMEmbeddingFunction",
    "PrincipleHit",
    "RetryPolicy",
    "StepHit",
    "StoreBusy",
    "StoreError",
    "StoreUnavailable",
    "TrajectoryHit",
    "TrajectoryStore",
    "default_embedding_function",
    "similarity_from_distance",
    "step_context",
]

_LAZY = {"default_embedding_function", "MiniLMEmbeddingFunction"}


def __getattr__(name: str) -> Any:
    # The embedder subclasses Chroma's protocol, so importing it imports chromadb: do it on demand.
    if name in _LAZY:
        from . import embedder

        return getattr(embedder, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
