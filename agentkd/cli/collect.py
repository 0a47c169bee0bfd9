"""`agentkd collect`: record teacher trajectories into the experience store."""

from __future__ import annotations

import asyncio
import time

import typer

from agentkd.cli.common import DEFAULT_STORE, _fail, app
from agentkd.errors import AgentKDError


@app.command()
def collect(
    env: str = typer.Option("household", help="Environment: household, qa or math."),
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
    mistake_rate: float = typer.Option(0.0, min=0.0, max=0.99, help="The expert takes a wrong admissible action "
                                       "with this probability per step, then recovers: data with mistakes and "
                                       "recoveries (the mistakes are shown to students, never trained on)."),
    embedder: str = typer.Option(None, help="Embedder of a new store: static or minilm (default: an existing "
                                 "store's own, else agentkd's default). A store never mixes embedders."),
    embed_device: str = typer.Option("cpu", help="Torch device of the MiniLM embedder (cuda with a GPU)."),
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
    from agentkd.store import ExperienceStore

    console = Console(soft_wrap=True)
    try:
        plan = plan_episodes(load_tasks(env, split), episodes)
        policy = resolve_teacher(teacher, env, first_thought=first_thought, temperature=temperature, prices=prices,
                                 mistake_rate=mistake_rate)
        experience = ExperienceStore(store, embedding_function=embedder, embed_device=embed_device)
    except (AgentKDError, ValueError, OSError) as exc:  # StoreError is an AgentKDError
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
        except AgentKDError as exc:  # the store's or the embedder's (StoreError, StaticEmbedderError)
            _fail(str(exc))
        progress.update(bar, completed=summary.already_stored + summary.played)
    console.print(
        f"{summary.played} episodes played ({summary.already_stored} already stored), "
        f"success {summary.succeeded}/{summary.played or 1}, {summary.steps} steps in {summary.wall_time_s:.1f}s "
        f"({summary.episodes_per_s:.1f} episodes/s, {summary.steps_per_s:.0f} steps/s); "
        f"store holds {summary.stored_total}/{summary.requested} of this run's trajectories"
    )
