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


_FILTER_HELP = {
    "env": "Only this environment.", "split": "Only this split.", "task_type": "Only this task type.",
    "policy_kind": "Only this policy kind (expert, noisy_expert, student, ...).",
    "policy_name": "Only this policy name.",
}


def _filters(**given) -> dict:
    return {k: v for k, v in given.items() if v is not None}


@store_app.command("export")
def store_export(
    out: str = typer.Argument(..., help="JSONL file to write."),
    store: str = typer.Option(DEFAULT_STORE, help="Store folder or Chroma server URL."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl: one trajectory per line (what `store import` reads); "
                               "messages: TRL's conversational format, one {\"messages\": [...]} per episode as "
                               "`agentkd train sft` trains on (successes only unless --failure), plus the steps table "
                               "(prompt/completion per step) in --steps."),
    steps: str = typer.Option(None, help="With --format messages: the steps table's file (default: OUT with "
                              ".steps.jsonl)."),
    env: str = typer.Option(None, help=_FILTER_HELP["env"]),
    split: str = typer.Option(None, help=_FILTER_HELP["split"]),
    task_type: str = typer.Option(None, help=_FILTER_HELP["task_type"]),
    policy_kind: str = typer.Option(None, help=_FILTER_HELP["policy_kind"]),
    policy_name: str = typer.Option(None, help=_FILTER_HELP["policy_name"]),
    success: bool = typer.Option(None, "--success/--failure", help="Only successful (or failed) trajectories."),
    evaluation: bool = typer.Option(None, "--evaluation/--no-evaluation",
                                    help="Only evaluation trajectories (or only collected ones)."),
) -> None:
    """Write the store's (filtered) trajectories to a JSONL file: records for `store import`, or TRL-ready chats."""
    from pathlib import Path

    from agentkd.store import StoreError

    if fmt not in ("jsonl", "messages"):
        _fail(f"--format must be jsonl or messages, not {fmt!r}")
    filters = _filters(env=env, split=split, task_type=task_type, policy_kind=policy_kind, policy_name=policy_name,
                       success=success, evaluation=evaluation)
    experience = _open_store(store)
    try:
        if fmt == "jsonl":
            written = experience.export_jsonl(out, **filters)
            print(f"exported {written} trajectories from {store} to {out}")
            return
        from agentkd.distill.export import export_messages

        steps_path = steps or str(Path(out).with_suffix("")) + ".steps.jsonl"
        report, n_steps = export_messages(experience.iterate(**filters), out, steps_path=steps_path,
                                          success_only=success is not False)
    except (StoreError, OSError) as exc:
        _fail(str(exc))
    dropped = ", ".join(f"{k} {v}" for k, v in report.dropped.items()) or "none"
    print(f"exported {report.kept} conversations (of {report.considered} trajectories; left out: {dropped}) to {out}, "
          f"and {n_steps} steps to {steps_path}")


@store_app.command("push")
def store_push(
    repo: str = typer.Option(..., help="Hugging Face dataset repository, e.g. me/household-trajectories."),
    store: str = typer.Option(DEFAULT_STORE, help="Store folder or Chroma server URL."),
    private: bool = typer.Option(False, "--private", help="Create the repository private."),
    save_to: str = typer.Option(None, help="Write the dataset (parquet tables and README.md) into this folder "
                                "instead of pushing: what would be published, offline."),
    env: str = typer.Option(None, help=_FILTER_HELP["env"]),
    split: str = typer.Option(None, help=_FILTER_HELP["split"]),
    evaluation: bool = typer.Option(False, "--evaluation/--no-evaluation",
                                    help="Publish evaluation trajectories (default: only collected ones)."),
) -> None:
    """Publish the store as a Hugging Face dataset (trajectories, messages, steps) with a dataset card.

    Pushing needs the network and a token (`huggingface-cli login` or HF_TOKEN).
    """
    from agentkd.distill.export import hub_tables
    from agentkd.store import StoreError
    from agentkd.store.transfer import push_dataset, save_dataset

    experience = _open_store(store)
    try:
        tables, card = hub_tables(experience, repo, **_filters(env=env, split=split, evaluation=evaluation))
        if save_to:
            print(f"wrote {', '.join(f'{k} ({len(v)} rows)' for k, v in tables.items())} and README.md to "
                  f"{save_dataset(tables, card, save_to)}")
            return
        url = push_dataset(tables, card, repo, private=private)
    except (StoreError, OSError) as exc:
        _fail(str(exc))
    except Exception as exc:  # the hub: no network, no token, no permission — one line, not a traceback
        _fail(f"could not push to {repo}: {type(exc).__name__}: {exc}")
    print(f"pushed {', '.join(f'{k} ({len(v)} rows)' for k, v in tables.items())} to {url}")


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


@store_app.command("show")
def store_show(
    trajectory_id: str = typer.Argument(..., help="The trajectory's id (the viewer and `store export` show them)."),
    store: str = typer.Option(DEFAULT_STORE, help="Store folder or Chroma server URL."),
) -> None:
    """Print one trajectory as a transcript: thoughts, actions, observations, candidates and deferrals."""
    from agentkd.store import StoreError
    from agentkd.view.terminal import print_transcript

    try:
        trajectory = _open_store(store).get(trajectory_id)
    except StoreError as exc:
        _fail(str(exc))
    if trajectory is None:
        _fail(f"no trajectory {trajectory_id!r} in {store} (list them with `agentkd view --store {store}` "
              "or `agentkd store export`)")
    print_transcript(trajectory)
