"""A setting: a config dataclass field that carries its own help text, command-line flag and bounds.

A setting's default and its documentation live once, on the field (as TRL's configs do); the CLI
builds each command's options from them (:func:`agentkd.cli.options.config_options`), so the two
cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, Field, field, fields
from typing import Any

__all__ = ["documented_field", "setting"]


def setting(default: Any = MISSING, help: str = "", *, flag: str | None = None, min: float | None = None,
            default_factory: Callable[[], Any] | Any = MISSING, cli: bool = True) -> Any:
    """A dataclass field with ``help`` (also the CLI option's help), its CLI ``flag`` (default: the
    field's name with dashes) and a lower bound ``min`` for the CLI to check; ``cli=False`` keeps it
    off the command line (set it from Python or a config file)."""
    metadata = {"help": help, "flag": flag, "min": min, "cli": cli}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def documented_field(config_class: type, name: str) -> Field | None:
    """The field ``name`` as documented: the nearest class in ``config_class``'s MRO whose field has help
    (a subclass that only changes a default, ``epochs: float = 3.0``, keeps its base's help and flag)."""
    for cls in config_class.__mro__:
        for f in fields(cls) if hasattr(cls, "__dataclass_fields__") else ():
            if f.name == name and f.metadata.get("help"):
                return f
    return None
