"""The `agentkd` command. Heavy modules are imported inside each command, so `--help` is instant."""

from __future__ import annotations

import asyncio
import sys
import time

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="agentkd: distil tool-using LLM agents into small students.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print side-by-side ratios.")
app.add_typer(bench_app, name="bench")
store_app = typer.Typer(no_args_is_help=True, help="Inspect and move experience stores.")
app.add_typer(store_app, name="store")

DEFAULT_STORE = "trajectories/store"


def _fail(message: str) -> None:
    from rich.console import Console

    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


@app.command()
def play(
    env: str = typer.Argument("household", help="Environment to play (household)."),
    split: str = typer.Option("valid_unseen", help="train, valid_seen or valid_unseen."),
    index: int = typer.Option(0, help="Task index within the split."),
    game_file: str = typer.Option(None, "--game-file", help="Play an official game.tw-pddl file instead."),
    expert: bool = typer.Option(False, "--expert", help="Watch the expert play, with its thoughts."),
    backend: str = typer.Option("native", help="native, or official (needs the 'official' extra)."),
    show_commands: bool = typer.Option(False, "--commands", help="List admissible commands each turn."),
) -> None:
    """Play a task in the terminal (type commands), or watch the expert solve it."""
    from rich.console import Console

    if env != "household":
        _fail(f"unknown environment {env!r}; available: household")
    from environments.household import GameFileError, HouseholdEnv, get_task, task_from_game_file

    console = Console(soft_wrap=True)  # keep game text unbroken, so commands can be copied
    try:
        task = task_from_game_file(game_file) if game_file else get_task(split, index)
        environment = HouseholdEnv(backend=backend)
        obs = environment.reset(task)
    except (ValueError, IndexError, GameFileError, ImportError, OSError) as exc:
        _fail(str(exc))
    console.print(f"[dim]{task.task_id} · {task.task_type}[/]")
    console.print(obs, markup=False, highlight=False)
    done, reward = False, 0.0
    while not done:
        if show_commands:
            console.print("[dim]" + " | ".join(environment.admissible_actions()) + "[/]")
        if expert:
            thought, action = environment.expert_action()
            console.print(f"[cyan]think:[/] {thought}", highlight=False)
            console.print(f"[bold]> {action}[/]", highlight=False)
        else:
            try:
                action = console.input("[bold]> [/]")
            except (EOFError, KeyboardInterrupt):
                console.print()
                return
            if action.strip() in ("quit", "exit"):
                return
        obs, reward, done, info = environment.step(action)
        console.print(obs, markup=False, highlight=False)
    outcome = "[green]solved[/]" if reward > 0 else "[red]not solved[/]"
    console.print(f"{outcome} in {environment.steps} steps")


@app.command()
def collect(
    env: str = typer.Option("household", help="Environment (household)."),
    split: str = typer.Option("train", help="Split to draw tasks from."),
    teacher: str = typer.Option("expert", help="expert, openai:MODEL, or a local Hugging Face model dir/name."),
    episodes: int = typer.Option(100, min=1, help="Episodes in the run (episode i plays task i mod split size)."),
    store: str = typer.Option(DEFAULT_STORE, help="Store folder, or http://host:port of a Chroma server."),
    workers: int = typer.Option(8, min=1, help="Episodes played concurrently (their model calls are batched)."),
    max_steps: int = typer.Option(50, min=1, help="Step limit per episode."),
    first_thought: bool = typer.Option(False, "--first-thought", help="Prefill the teacher's first turn with "
                                       "the first paragraph of its own chain-of-thought plan."),
    temperature: float = typer.Option(0.0, help="Sampling temperature for model teachers."),
    flush_every: int = typer.Option(32, min=1, help="Trajectories per store write."),
    prices: str = typer.Option(None, help="JSON price table {model: [usd_per_1M_in, usd_per_1M_out]} for the "
                               "trajectories' cost (chat-model teachers)."),
) -> None:
    """Record teacher trajectories into the experience store. Re-running the same command resumes."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from agentkd.collect import collect_async, plan_episodes, resolve_teacher
    from agentkd.envs import load_tasks
    from agentkd.store import ExperienceStore, StoreError

    console = Console(soft_wrap=True)
    try:
        plan = plan_episodes(load_tasks(env, split), episodes)
        policy = resolve_teacher(teacher, env, first_thought=first_thought, temperature=temperature, prices=prices)
        experience = ExperienceStore(store)
    except (ValueError, StoreError, OSError) as exc:
        _fail(str(exc))

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("success {task.fields[rate]}"), TextColumn("{task.fields[speed]} steps/s"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    counters = {"done": 0, "won": 0, "steps": 0, "stored": 0, "t0": time.perf_counter()}
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        bar = progress.add_task(f"{env}/{split} <- {policy.info.name}", total=episodes, rate="-", speed="-")

        def on_episode(trajectory) -> None:
            counters["done"] += 1
            counters["won"] += trajectory.success
            counters["steps"] += trajectory.num_steps
            elapsed = time.perf_counter() - counters["t0"]
            progress.update(bar, advance=1, rate=f"{counters['won'] / counters['done']:.0%}",
                            speed=f"{counters['steps'] / elapsed:.0f}")

        def on_stored(n: int) -> None:
            counters["stored"] += n
            if not console.is_terminal:  # logs and tests see each committed batch
                print(f"stored {counters['stored']} trajectories", flush=True)

        try:
            summary = asyncio.run(collect_async(policy, env, plan, experience, workers=workers, max_steps=max_steps,
                                                flush_every=flush_every, on_episode=on_episode,
                                                on_stored=on_stored))
        except StoreError as exc:
            _fail(str(exc))
        progress.update(bar, completed=summary.already_stored + summary.played)
    console.print(
        f"{summary.played} episodes played ({summary.already_stored} already stored), "
        f"success {summary.succeeded}/{summary.played or 1}, {summary.steps} steps in {summary.wall_time_s:.1f}s "
        f"({summary.episodes_per_s:.1f} episodes/s, {summary.steps_per_s:.0f} steps/s); "
        f"store holds {summary.stored_total}/{summary.requested} of this run's trajectories"
    )


@store_app.command("stats")
def store_stats(store: str = typer.Option(DEFAULT_STORE, help="Store folder or Chroma server URL.")) -> None:
    """Counts by env, split, task type, policy and success."""
    from rich.console import Console
    from rich.table import Table

    from agentkd.store import ExperienceStore, StoreError

    try:
        stats = ExperienceStore(store, create=False).stats()
    except StoreError as exc:
        _fail(str(exc))
    console = Console(soft_wrap=True)
    console.print(f"[bold]{store}[/]: {stats.get('trajectories', 0)} trajectories, {stats.get('steps', 0)} steps")
    for key, counts in stats.items():
        if isinstance(counts, dict):
            table = Table(title=key)
            table.add_column(key)
            table.add_column("trajectories", justify="right")
            for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
                table.add_row(str(name), str(n))
            console.print(table)


@bench_app.command("env")
def bench_env_cmd(
    games: int = typer.Option(6, help="Games to play (cycling through the six task types)."),
    steps: int = typer.Option(40, help="Random admissible commands per game."),
    split: str = typer.Option("valid_unseen"),
) -> None:
    """Native vs official household engine: per-step time on the same games and commands."""
    from rich.console import Console
    from rich.table import Table

    from agentkd.bench import bench_env

    try:
        r = bench_env(games=games, steps=steps, split=split)
    except ImportError as exc:
        _fail(str(exc))
    table = Table(title=f"household engine, {r.games} games x {r.steps} steps (admissible commands every step)")
    for col in ("engine", "ms / step", "ms / reset"):
        table.add_column(col, justify="right")
    table.add_row("native", f"{r.native_ms_per_step:.4f}", f"{r.native_reset_ms:.3f}")
    table.add_row("official", f"{r.official_ms_per_step:.2f}", f"{r.official_reset_ms:.1f}")
    console = Console()
    console.print(table)
    console.print(f"native is [bold]{r.speedup:,.0f}x[/] faster per step")


@bench_app.command("store")
def bench_store_cmd(
    steps: int = typer.Option(20_000, help="Steps to ingest (real household expert steps)."),
    queries: int = typer.Option(200, help="Similarity queries to time."),
    precision: str = typer.Option("auto", help="Embedder precision: auto, float32, bfloat16, float16."),
    store: str = typer.Option(None, help="Store folder or server URL (default: a temporary folder)."),
) -> None:
    """Experience store: ingest steps/s (embedding included) and query latency p50/p95."""
    from rich.console import Console
    from rich.table import Table

    from agentkd.store.bench import bench_store

    r = bench_store(steps, queries=queries, path=store, precision=precision)
    table = Table(title=f"experience store, {r['stored_steps']:,} steps ({r['precision']} embedder)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("ingest, steps/s (embedding + Chroma)", f"{r['ingest_steps_per_s']:.1f}"),
        ("  texts embedded (steps and goals)", f"{r['embedded_texts']:,}"),
        ("  embedder alone, texts/s", f"{r['embed_texts_per_s']:.1f}"),
        ("  Chroma writes alone, steps/s", f"{r['store_only_steps_per_s']:.1f}"),
        ("query p50 / p95, ms", f"{r['query_p50_ms']:.1f} / {r['query_p95_ms']:.1f}"),
        ("  embedding / search p50, ms", f"{r['query_embed_p50_ms']:.1f} / {r['query_search_p50_ms']:.1f}"),
        ("batched queries, ms per query", f"{r['batched_ms_per_query']:.1f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
