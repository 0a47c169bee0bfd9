"""The `agentkd` command. Heavy modules are imported inside each command, so `--help` is instant."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="agentkd: distil tool-using LLM agents into small students.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print side-by-side ratios.")
app.add_typer(bench_app, name="bench")


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


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
