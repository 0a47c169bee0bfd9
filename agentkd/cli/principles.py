"""`agentkd distill principles` and `agentkd principles ...`: mine and inspect principles."""

from __future__ import annotations

import typer

from agentkd.cli.common import DEFAULT_STORE, _fail, _open_store, app
from agentkd.errors import AgentKDError

distill_app = typer.Typer(no_args_is_help=True, help="Distil the store's trajectories into principles.")
app.add_typer(distill_app, name="distill")
principles_app = typer.Typer(no_args_is_help=True, help="Inspect the store's principles.")
app.add_typer(principles_app, name="principles")


@distill_app.command("principles")
def distill_principles_cmd(
    store: str = typer.Option(DEFAULT_STORE, help="Store folder, or http://host:port of a Chroma server."),
    env: str = typer.Option(None, help="Only this environment's trajectories (default: all)."),
    split: str = typer.Option(None, help="Only this split's trajectories (default: all but evaluation runs)."),
    policy_kind: str = typer.Option(None, help="Only trajectories of this policy kind (expert, explorer, ...)."),
    model: str = typer.Option(None, help="Extract with this chat model (openai:MODEL, or provider:model with "
                              "langchain installed) instead of the offline miner."),
    judge: bool = typer.Option(False, "--judge", help="Let --model confirm each near-duplicate merge."),
    threshold: float = typer.Option(0.9, min=0.0, max=1.0, help="Cosine similarity at which principles merge."),
    max_episodes: int = typer.Option(None, min=1, help="Distil at most this many trajectories."),
    per_episode: int = typer.Option(2, min=1, help="Principles a chat model may write per episode."),
    prune_below: float = typer.Option(0.3, help="Prune principles whose score (s+1)/(u+2) is below this ..."),
    min_usage: int = typer.Option(5, min=0, help="... after being shown in at least this many episodes."),
) -> None:
    """Mine (or extract with --model) principles, merge duplicates, credit shown ones, prune failing ones."""
    from rich.console import Console

    from agentkd.distill.principles import distill_principles

    console = Console(soft_wrap=True)
    experience = _open_store(store)
    try:
        chat = None
        if model:
            from agentkd.distill.principles.extract import resolve_chat_model

            chat = resolve_chat_model(model)
        elif judge:
            _fail("--judge needs --model (the chat model that judges)")
        report = distill_principles(
            experience, env=env, split=split, policy_kind=policy_kind, model=chat, judge=judge, threshold=threshold,
            per_episode=per_episode, max_episodes=max_episodes, prune_below=prune_below, min_usage=min_usage,
            on_stage=lambda text: console.print(f"[dim]{text}[/]"))
    except AgentKDError as exc:  # StoreError, ConfigError, NoTrajectoriesError, ...
        _fail(str(exc))
    console.print(f"{report.trajectories} trajectories -> {report.candidates} candidate principles ({report.source}): "
                  f"{report.added.summary()}")
    if report.extraction_failures:
        console.print(f"[yellow]{len(report.extraction_failures)} episodes could not be read by the model[/] "
                      f"(first: {report.extraction_failures[0][0]}: {report.extraction_failures[0][1]})")
    credited = report.credited
    console.print(f"credited {credited.episodes} episodes to {len(credited.credited)} principles "
                  f"({credited.skipped} credited before); pruned {len(report.pruned)}")
    console.print(f"active principles: {experience.count_principles(status='active')} (agentkd principles list)")


@principles_app.command("list")
def principles_list_cmd(
    store: str = typer.Option(DEFAULT_STORE, help="Store folder or Chroma server URL."),
    env: str = typer.Option(None, help="Only this environment's principles."),
    kind: str = typer.Option(None, help="guiding or cautionary."),
    task_type: str = typer.Option(None, help="Only principles of this task type ('' for env-wide ones)."),
    status: str = typer.Option("active", help="active, pruned, merged, or all."),
    limit: int = typer.Option(50, min=1, help="Show at most this many (best score first)."),
) -> None:
    """Principles in the store, best score first."""
    from rich.console import Console
    from rich.table import Table

    if kind is not None and kind not in ("guiding", "cautionary"):
        _fail(f"unknown kind {kind!r}; use guiding or cautionary")
    if status not in ("active", "pruned", "merged", "all"):
        _fail(f"unknown status {status!r}; use active, pruned, merged or all")
    experience = _open_store(store)
    filters = {"env": env, "kind": kind, "task_type": task_type, "status": None if status == "all" else status}
    found = list(experience.iterate_principles(**{k: v for k, v in filters.items() if v is not None}))
    found.sort(key=lambda p: (-p.score, -p.usage_count, p.text))
    table = Table(title=f"{len(found)} principles" + (f" (best {limit})" if len(found) > limit else ""))
    for column in ("id", "kind", "env/task type", "score", "shown", "won", "v", "text"):
        table.add_column(column, justify="right" if column in ("score", "shown", "won", "v") else "left",
                         no_wrap=column != "text", min_width=30 if column == "text" else None)
    for p in found[:limit]:
        status_mark = "" if p.status == "active" else f" [{p.status}]"
        table.add_row(p.principle_id, p.kind, f"{p.env}/{p.task_type or '*'}", f"{p.score:.2f}", str(p.usage_count),
                      str(p.success_count), str(p.version), p.text + status_mark)
    Console(soft_wrap=True).print(table)


@principles_app.command("show")
def principles_show_cmd(
    principle: str = typer.Argument(..., help="A principle id (p-...)."),
    store: str = typer.Option(DEFAULT_STORE, help="Store folder or Chroma server URL."),
) -> None:
    """One principle: its text, counts, data, sources and versioned history."""
    import json

    from rich.console import Console
    from rich.table import Table

    found = _open_store(store).get_principle(principle)
    if found is None:
        _fail(f"no principle {principle!r} in {store}; list them with `agentkd principles list --store {store}`")
    console = Console(soft_wrap=True)
    merged = f" into {found.merged_into}" if found.merged_into else ""
    console.print(f"[bold]{found.principle_id}[/] ({found.kind}, {found.env}/{found.task_type or '*'}, "
                  f"{found.status}{merged}, version {found.version})")
    console.print(found.text, markup=False, highlight=False)
    console.print(f"score {found.score:.3f} = ({found.success_count}+1)/({found.usage_count}+2); "
                  f"{len(found.source_trajectories)} source trajectories; key {found.key or '-'}")
    if found.data:
        console.print(f"data: {json.dumps(found.data)}", markup=False, highlight=False)
    history = Table(title="history")
    for column in ("v", "at (UTC)", "change", "note"):
        history.add_column(column)
    for change in found.history:
        history.add_row(str(change.version), change.at.strftime("%Y-%m-%d %H:%M:%S"), change.change, change.note)
    console.print(history)
