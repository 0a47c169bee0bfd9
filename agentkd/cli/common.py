"""What the command modules share: the root Typer app, defaults, help texts and error exits."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="agentkd: distil tool-using LLM agents into small students.")

DEFAULT_STORE = "trajectories/store"


def _fail(message: str) -> None:
    from rich.console import Console

    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)




def _open_store(store: str):
    from agentkd.store import ExperienceStore, StoreError

    try:
        return ExperienceStore(store, create=False)
    except StoreError as exc:
        _fail(str(exc))


@contextmanager
def _notes() -> Iterator[None]:
    """Show agentkd's and environments' own warnings (games skipped from a folder, ...) as one-line notes on stderr."""
    from rich.console import Console
    from rich.markup import escape

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, UserWarning) and category.__module__.startswith(("agentkd", "environments")):
            Console(stderr=True, soft_wrap=True).print(f"[yellow]note:[/] {escape(str(message))}", highlight=False)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown
