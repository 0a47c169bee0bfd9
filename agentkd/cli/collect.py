"""`agentkd collect`: record teacher trajectories into the experience store."""

from __future__ import annotations

import asyncio
import time

import typer

from agentkd.cli.common import DEFAULT_STORE, _fail, _notes, app
from agentkd.errors import AgentKDError, ConfigError
from agentkd.splits import SPLIT_HELP


@app.command()
def collect(
    env: str = typer.Option("household", help="Environment: household, qa, math, or one an installed package adds."),
    split: str = typer.Option("train", help="Split to draw tasks from: " + SPLIT_HELP + "."),
    teacher: str = typer.Option("expert", help="expert; openai:MODEL (any OpenAI-compatible server via "
                                "OPENAI_BASE_URL); provider:MODEL (any LangChain chat model, e.g. "
                                "anthropic:claude-...); or a local Hugging Face model dir/name."),
    episodes: int = typer.Option(100, min=1, help="Episodes in the run (episode i plays task i mod split size)."),
    task_types: str = typer.Option(None, help="Only the split's tasks of these types (comma-separated)."),
    store: str = typer.Option(DEFAULT_STORE, help="Store folder, or http://host:port of a Chroma server."),
    workers: int = typer.Option(8, min=1, help="Episodes played concurrently (their model calls are batched)."),
    max_steps: int = typer.Option(50, min=1, help="Step limit per episode."),
    first_thought: bool = typer.Option(False, "--first-thought", help="Prefill the teacher's first turn with "
                                       "the first paragraph of its own chain-of-thought plan."),
    temperature: float = typer.Option(0.0, help="Sampling temperature for model teachers."),
    flush_every: int = typer.Option(32, min=1, help="Trajectories per store write."),
    prices: str = typer.Option(None, help="JSON price table {model: [usd_per_1M_in, usd_per_1M_out]} for the "
                               "trajectories' cost (chat-model teachers)."),
    shard: str = typer.Option("0/1", help="K/N: play every N-th episode of the run starting at K, so N processes "
                              "(K = 0..N-1) with otherwise equal commands split one run, e.g. into one Chroma "
                              "server."),
    max_failures: int = typer.Option(10, min=0, help="Episodes that may fail (teacher errors) before the run "
                                     "stops; failed episodes are replayed by the next run."),
    max_new_tokens: int = typer.Option(128, min=1, help="Reply cap for model teachers (tokens per step)."),
    mistake_rate: float = typer.Option(0.0, min=0.0, max=0.99, help="The expert takes a wrong admissible action "
                                       "with this probability per step, then recovers: data with mistakes and "
                                       "recoveries (the mistakes are shown to students, never trained on)."),
    slip_lookahead: int = typer.Option(0, min=0, help="With --mistake-rate: the refused slips also include the "
                                       "expert's own moves of the next K steps taken too early (acting on what is "
                                       "not reached yet, e.g. 'use desklamp 1' on the way to the lamp)."),
    dagger: str = typer.Option(None, help="DAgger: this student (a directory, as for eval) plays, the teacher "
                               "labels every state it reaches and takes over at a share --beta of their "
                               "disagreements; the student's other mistakes are kept in the episode, marked, and "
                               "never trained on."),
    dagger_config: str = typer.Option("greedy+constrained+noloop", help="How the --dagger student plays: greedy "
                                      "or sc@K, with +constrained, +noloop and/or +retry (as in eval)."),
    beta: float = typer.Option(0.5, min=0.0, max=1.0, help="With --dagger: the share of disagreements where the "
                               "teacher's action is taken (and learnt) rather than the student's."),
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

    from agentkd.collection import collect_async, parse_shard, plan_episodes
    from agentkd.envs import load_tasks
    from agentkd.splits import split_name
    from agentkd.store import ExperienceStore

    console = Console(soft_wrap=True)
    try:
        with _notes():
            tasks = load_tasks(env, split)
        if task_types:
            tasks = _of_types(tasks, task_types)
        plan = plan_episodes(tasks, episodes, parse_shard(shard))
        policy = _teacher(teacher, env, first_thought=first_thought, temperature=temperature, prices=prices,
                          mistake_rate=mistake_rate, slip_lookahead=slip_lookahead, max_new_tokens=max_new_tokens)
        if dagger:
            if mistake_rate:
                raise ConfigError("--mistake-rate and --dagger: the student makes the mistakes under DAgger")
            policy = _dagger(dagger, dagger_config, policy, env, beta)
        experience = ExperienceStore(store, embedding_function=embedder, embed_device=embed_device)
    except (AgentKDError, OSError) as exc:  # StoreError, ConfigError, ...; OSError: a path that cannot be used
        _fail(str(exc))

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("success {task.fields[rate]}"), TextColumn("{task.fields[speed]} steps/s"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    counters = {"done": 0, "won": 0, "steps": 0, "stored": 0, "t0": time.perf_counter()}
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        bar = progress.add_task(f"{env}/{split_name(split)} <- {policy.info.name}", total=len(plan), rate="-",
                                speed="-")

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

        def on_failure(failure) -> None:
            progress.console.print(f"[yellow]episode {failure.task_id} seed {failure.seed} failed:[/] {failure.error}",
                                   markup=True, highlight=False)

        try:
            summary = asyncio.run(collect_async(policy, env, plan, experience, workers=workers, max_steps=max_steps,
                                                flush_every=flush_every, max_failures=max_failures,
                                                on_episode=on_episode, on_stored=on_stored, on_failure=on_failure))
        except AgentKDError as exc:  # StoreError, StoreBusy, CollectionAborted, StaticEmbedderError
            _fail(str(exc))
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the finished episodes were written before this
            progress.stop()
            print(f"stopped: {counters['done']} episodes finished, {counters['stored']} stored; run the same "
                  "command again to play the rest", flush=True)
            raise typer.Exit(130) from None
        progress.update(bar, completed=summary.already_stored + summary.played)
    console.print(
        f"{summary.played} episodes played ({summary.already_stored} already stored), "
        f"success {summary.succeeded}/{summary.played or 1}, {summary.steps} steps in {summary.wall_time_s:.1f}s "
        f"({summary.episodes_per_s:.1f} episodes/s, {summary.steps_per_s:.0f} steps/s); "
        f"store holds {summary.stored_total}/{summary.requested} of this run's trajectories"
        + (f"; {len(summary.failures)} episodes failed (run the command again to replay them)"
           if summary.failures else "")
    )


def _of_types(tasks: list, task_types: str) -> list:
    """The tasks of the comma-separated ``task_types``; none at all is a ConfigError naming the split's types."""
    wanted = {t.strip() for t in task_types.split(",") if t.strip()}
    kept = [t for t in tasks if t.task_type in wanted]
    if not kept:
        known = sorted({t.task_type for t in tasks})
        raise ConfigError(f"--task-types {task_types}: the split has no such tasks; its types are {', '.join(known)}")
    return kept


def _teacher(spec: str, env: str, **options):
    """The teacher ``spec`` names (:func:`agentkd.collection.resolve_teacher`), except that a local model plays on
    the replay engine, as eval's students do: with a prefix cache per episode each step prefills only its new
    tokens, where a plain ``generate`` re-reads every episode's whole conversation at every step."""
    from agentkd.collection import chat_spec, resolve_teacher

    if spec == "expert" or chat_spec(spec) or options["first_thought"] or options["mistake_rate"] \
            or options["slip_lookahead"]:
        return resolve_teacher(spec, env, **options)  # the last two: a clear error for a local model
    from agentkd.replay.policy import StudentPolicy

    return StudentPolicy(spec, temperature=options["temperature"], max_new_tokens=options["max_new_tokens"])


def _dagger(student: str, config_name: str, teacher, env: str, beta: float):
    """The --dagger student, playing as ``config_name`` says, labelled by ``teacher``."""
    from agentkd.envs import get_spec
    from agentkd.eval.run import parse_configs
    from agentkd.replay.dagger import DaggerPolicy
    from agentkd.replay.policy import StudentPolicy

    (config,) = parse_configs([config_name])
    if config.teacher or config.icd or config.principles or config.cascade is not None:
        raise ConfigError(f"--dagger-config {config_name}: a DAgger student plays greedy or sc@K, optionally "
                          "+constrained, +noloop and +retry (the teacher already labels every step)")
    played = StudentPolicy(student, max_new_tokens=get_spec(env).max_new_tokens, **config.student_options())
    return DaggerPolicy(played, teacher, beta=beta)
