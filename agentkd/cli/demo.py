"""`agentkd demo`: the whole pipeline on this machine."""

from __future__ import annotations

import typer

from agentkd.cli.common import _SPLIT_HELP, _STUDENT_HELP, _fail, _notes, app
from agentkd.errors import AgentKDError


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
    split: str = typer.Option("valid_unseen", help="Splits to evaluate on, comma-separated: " + _SPLIT_HELP + "."),
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
        with _notes():
            run_demo(config, console)
    except (AgentKDError, ValueError) as exc:  # StoreError is an AgentKDError
        _fail(str(exc))
