"""Which embedder a store or corpus index gets: the embedders agentkd builds, by name.

``minilm`` is the packaged all-MiniLM-L6-v2 (:mod:`.embedder`); ``static`` is the same model
distilled into static token embeddings (:mod:`.static`), which embeds a step context in
microseconds instead of milliseconds. A store records the name of the embedder it was written
with; opening it without choosing one uses that recorded embedder, so a store never mixes two.

Importing this module imports neither chromadb nor a model.
"""

from __future__ import annotations

from typing import Any

from agentkd.errors import AgentKDError

__all__ = [
    "DEFAULT_EMBEDDER",
    "EMBEDDERS",
    "EmbedderChoiceError",
    "make_embedding_function",
    "recorded_embedding_function",
    "resolve_embedding_function",
]

#: Short names (``--embedder``) and the names stores record for them.
EMBEDDERS: dict[str, str] = {
    "minilm": "agentkd-minilm-l6-v2",
    "static": "agentkd-static-minilm-l6-v2-v1",
}
#: The embedder of a new store when none is chosen (see the README's store section for the figures).
DEFAULT_EMBEDDER = "minilm"


class EmbedderChoiceError(AgentKDError, ValueError):
    """An unknown embedder name, or a recorded embedder agentkd cannot build."""


def make_embedding_function(name: str = DEFAULT_EMBEDDER, *, device: str = "cpu") -> Any:
    """A fresh embedding function for a short name (``minilm`` or ``static``).

    ``device`` is the torch device of MiniLM (``cuda`` for users with a GPU); the static embedder
    runs no model, so it has no device.
    """
    if name == "minilm":
        from .embedder import default_embedding_function

        return default_embedding_function(device=device)
    if name == "static":
        from .static import static_embedding_function

        return static_embedding_function()
    raise EmbedderChoiceError(f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS)}")


def recorded_embedding_function(recorded: str, *, where: str, device: str = "cpu") -> Any:
    """The embedding function for the name a store or index recorded (``where`` names it in errors)."""
    for short, full in EMBEDDERS.items():
        if recorded == full:
            return make_embedding_function(short, device=device)
    raise EmbedderChoiceError(
        f"{where} was embedded with {recorded!r}, which agentkd cannot build (it builds "
        f"{', '.join(EMBEDDERS.values())}); open it with embedding_function= set to that embedder"
    )


def resolve_embedding_function(choice: Any, *, recorded: str | None, where: str, device: str = "cpu") -> Any:
    """The embedding function to open something with.

    ``choice`` is an embedding function (kept as it is), a short name (``minilm``/``static``), or
    ``None``: then the ``recorded`` embedder of an existing store or index, else the default.
    """
    if choice is None:
        if recorded:
            return recorded_embedding_function(recorded, where=where, device=device)
        return make_embedding_function(DEFAULT_EMBEDDER, device=device)
    if isinstance(choice, str):
        return make_embedding_function(choice, device=device)
    return choice
