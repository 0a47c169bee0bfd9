"""Command options built from a config dataclass: each field's help, default, flag and bound come from
its metadata (:func:`agentkd.settings.setting`), so a default is written once, on the config.

    @train_app.command("sft")
    @config_options(SFTRunConfig)
    def train_sft_cmd(config: SFTRunConfig, out: str = typer.Option(...)) -> None: ...

The command gets ``config`` built from the options; its own parameters stay as they are.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Annotated, Any, TypeVar

import typer

from agentkd.settings import documented_field

__all__ = ["config_options"]

F = TypeVar("F", bound=Callable[..., Any])


def _sequence_type(annotation: Any) -> type | None:
    """``list`` or ``tuple`` for ``list[str]``, ``tuple[str, ...]`` (or either ``| None``), written on the
    command line as one comma-separated value; None for any other type."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    for candidate in (annotation, *args):
        if typing.get_origin(candidate) in (list, tuple):
            return typing.get_origin(candidate)
    return None


def _option(config_class: type, name: str, annotation: Any, default: Any) -> inspect.Parameter | None:
    documented = documented_field(config_class, name)
    if documented is None or not documented.metadata.get("cli", True):
        return None
    meta = documented.metadata
    flag = meta.get("flag") or "--" + name.replace("_", "-")
    decls = [f"{flag}/--no-{flag[2:]}"] if annotation is bool and default else [flag]  # a False bool: a plain flag
    if _sequence_type(annotation) is not None:
        annotation, default = str | None, ",".join(default) if default else None
    extra = {"min": meta["min"]} if meta.get("min") is not None and annotation is not bool else {}
    info = typer.Option(*decls, help=meta["help"], **extra)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[annotation, info])


def config_options(config_class: type) -> Callable[[F], F]:
    """Give a Typer command one option per documented field of ``config_class`` (see the module docstring)."""
    hints = typing.get_type_hints(config_class)

    def decorate(command: F) -> F:
        own_hints = typing.get_type_hints(command, include_extras=True)
        own = [p.replace(annotation=own_hints.get(p.name, p.annotation), kind=inspect.Parameter.KEYWORD_ONLY)
               for p in inspect.signature(command).parameters.values() if p.name != "config"]
        taken = {p.name for p in own}
        generated = []
        for f in fields(config_class):
            if not f.init or f.name in taken:
                continue
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            param = _option(config_class, f.name, hints[f.name], default)
            if param is not None:
                generated.append(param)
        sequences = {p.name: kind for p in generated if (kind := _sequence_type(hints[p.name])) is not None}

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            values = {p.name: kwargs.pop(p.name) for p in generated}
            for name, kind in sequences.items():
                text = values[name]
                values[name] = kind(v.strip() for v in text.split(",") if v.strip()) if text else None
            return command(config=config_class(**values), **kwargs)

        params = own + generated
        run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params}
        return run  # type: ignore[return-value]

    return decorate
