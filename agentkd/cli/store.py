"""`agentkd store ...`: inspect and move experience stores."""

from __future__ import annotations

import typer

from agentkd.cli.common import DEFAULT_STORE, _fail, _open_store, app

store_app = typer.Typer(no_args_is_help=True, help="Inspect and move experience stores.")
app.add_typer(store_app, name="store")


@store_app.command("stats")
def store_stats(store: str = typer.Option(DEFAULT_STORE, help="Store folder or Chroma server URL.")) -> None:
    """Counts by env, split, task type, policy and success."""
    from rich.console import Console
    from rich.table import Table

    from agentkd.store import ExperienceStore, StoreError

    try:
        opened = ExperienceStore(store, create=False)
        stats = opened.stats()
    except StoreError as exc:
        _fail(str(exc))
    console = Console(soft_wrap=True)
    console.print(f"[bold]{store}[/]: {stats.get('trajectories', 0)} trajectories, {stats.get('steps', 0)} steps, "
                  f"embedder {opened.embedder}")
    for key, counts in stats.items():
        if isinstance(counts, dict):
            table = Table(title=key)
            table.add_column(key)
            table.add_column("trajectories", justify="right")
            for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
                table.add_row(str(name), str(n))
            console.print(table)


@store_app.command("export")
def store_export(
    out: str = typer.Argument(..., help="JSONL file to write (one trajectory per line)."),
    store: str = typer.Option(DEFAULT_STORE, help="Store folder or Chroma server URL."),
    env: str = typer.Option(None, help="Only this environment."),
    split: str = typer.Option(None, help="Only this split."),
    task_type: str = typer.Option(None, help="Only this task type."),
    policy_kind: str = typer.Option(None, help="Only this policy kind (expert, noisy_expert, student, ...)."),
    policy_name: str = typer.Option(None, help="Only this policy name."),
    success: bool = typer.Option(None, "--success/--failure", help="Only successful (or failed) trajectories."),
    evaluation: bool = typer.Option(None, "--evaluation/--no-evaluation",
                                    help="Only evaluation trajectories (or only collected ones)."),
) -> None:
    """Write the store's (filtered) trajectories to a JSONL file that `store import` reads."""
    from agentkd.store import StoreError

    filters = {"env": env, "split": split, "task_type": task_type, "policy_kind": policy_kind,
               "policy_name": policy_name, "success": success, "evaluation": evaluation}
    try:
        written = _open_store(store).export_jsonl(out, **{k: v for k, v in filters.items() if v is not None})
    except (StoreError, OSError) as exc:
        _fail(str(exc))
    print(f"exported {written} trajectories from {store} to {out}")


@store_app.command("import")
def store_import(
    files: list[str] = typer.Argument(..., help="JSONL files written by `store export` (or a spool)."),  # noqa: B008
    store: str = typer.Option(DEFAULT_STORE, help="Store folder (created when missing) or Chroma server URL."),
    embedder: str = typer.Option(None, help="Embedder of a new store: static or minilm (default: an existing "
                                 "store's own, else agentkd's default)."),
    embed_device: str = typer.Option("cpu", help="Torch device of the MiniLM embedder (cuda with a GPU)."),
) -> None:
    """Upsert the trajectories of JSONL files into a store (by id: importing twice changes nothing)."""
    from agentkd.errors import AgentKDError
    from agentkd.store import ExperienceStore

    try:
        experience = ExperienceStore(store, embedding_function=embedder, embed_device=embed_device)
        for path in files:
            n = experience.import_jsonl(path)
            print(f"imported {n} trajectories from {path}")
        print(f"{store} holds {experience.count()} trajectories")
    except (AgentKDError, OSError) as exc:  # StoreError, BadRecordError, an unknown --embedder
        _fail(str(exc))
