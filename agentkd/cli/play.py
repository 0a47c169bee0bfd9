"""`agentkd play`: play a task in the terminal, or watch the expert."""

from __future__ import annotations

import typer

from agentkd.cli.common import _fail, _notes, app
from agentkd.errors import AgentKDError


@app.command()
def play(
    env: str = typer.Argument("household", help="Environment to play (household)."),
    split: str = typer.Option("valid_unseen", help="train, valid_seen, valid_unseen, or a folder of ALFWorld games."),
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
    from environments.household import HouseholdEnv, get_task, task_from_game_file

    console = Console(soft_wrap=True)  # keep game text unbroken, so commands can be copied
    try:
        with _notes():
            task = task_from_game_file(game_file) if game_file else get_task(split, index)
        environment = HouseholdEnv(backend=backend)
        obs = environment.reset(task)
    except (AgentKDError, ImportError, OSError) as exc:  # a bad split, index, game file or backend; no engine
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
