"""The marks that make a set of Chroma collections an agentkd store: its ``{prefix}_meta`` collection's
metadata (schema version, embedder, creation time), and the checks run when a store opens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agentkd.schema import SCHEMA_VERSION

from .chroma import StoreError

__all__ = ["STORE_MARK", "check_creatable", "check_embedder", "check_marks", "new_marks"]

STORE_MARK = "agentkd_store"  # key in the meta collection's metadata that marks an agentkd store


def check_marks(meta: dict[str, Any], *, location: str, meta_name: str) -> None:
    """An existing store's marks: ours, and of a schema this agentkd reads."""
    if not meta.get(STORE_MARK):
        raise StoreError(f"{location} is not an agentkd store (no meta): {meta_name} is not ours")
    found = int(meta.get("schema_version", 0))
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"the store at {location} has schema_version {found}, but this agentkd supports up to "
            f"schema_version {SCHEMA_VERSION}; upgrade agentkd to open it"
        )


def check_embedder(meta: dict[str, Any], embedder: str, *, location: str) -> None:
    """The embedder a store is opened with is the one its vectors were made with."""
    if meta.get("embedder") and meta["embedder"] != embedder:
        raise StoreError(
            f"the store at {location} was embedded with {meta['embedder']!r}, not {embedder!r}; "
            "open it with no embedder chosen (it then uses its own) or the same one; vectors of different "
            "embedders do not compare"
        )


def check_creatable(listed: dict[str, Any], ours: set[str], *, location: str, prefix: str, folder: bool,
                    create: bool) -> None:
    """A store may be created where none of its collections exist and a folder holds no other Chroma data
    (another prefix's agentkd store may share it)."""
    other_stores = any(
        name.endswith("_meta") and (getattr(col, "metadata", None) or {}).get(STORE_MARK)
        for name, col in listed.items()
    )
    if ours & set(listed) or (listed and folder and not other_stores):
        raise StoreError(f"{location} is not an agentkd store (no meta)")
    if not create:
        raise StoreError(f"no agentkd store with prefix {prefix!r} at {location}; pass create=True to create one")


def new_marks(embedder: str) -> dict[str, Any]:
    return {STORE_MARK: True, "schema_version": SCHEMA_VERSION, "embedder": embedder,
            "created_at": datetime.now(UTC).isoformat()}
