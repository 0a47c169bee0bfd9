"""The whole household pipeline in Python: record the expert, train a student with SFT, evaluate it.

    python examples/household_pipeline.py                          # the tiny student: a minute or two
    python examples/household_pipeline.py --student smollm2-135m --episodes 400 --train-minutes 15 --tasks 24

The tiny student is a random model for trying the pipeline out; it solves nothing. The packaged
SmolLM2-135M student is the one that learns (see the README's quality table).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import agentkd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/example", help="store, student and report go here")
    parser.add_argument("--student", default="tiny", help="tiny, smollm2-135m, a model directory or hub name")
    parser.add_argument("--episodes", type=int, default=16, help="expert episodes to record")
    parser.add_argument("--train-minutes", type=float, default=None, help="SFT time budget")
    parser.add_argument("--train-steps", type=int, default=10, help="SFT optimiser steps (-1: whole epochs)")
    parser.add_argument("--max-length", type=int, default=1024, help="longest training example in tokens")
    parser.add_argument("--tasks", type=int, default=2, help="valid_unseen tasks to evaluate")
    parser.add_argument("--max-steps", type=int, default=6, help="step limit of an evaluated episode")
    args = parser.parse_args()
    workdir = Path(args.workdir)

    # 1. Record: the household expert plays train tasks; every step goes into the Chroma store.
    store = agentkd.ExperienceStore(workdir / "store")
    teacher = agentkd.resolve_teacher("expert", "household")
    summary = agentkd.collect(teacher, "household", "train", args.episodes, store, workers=8)
    print(f"recorded {summary.played} episodes ({summary.already_stored} already stored), "
          f"{summary.succeeded} solved; the store holds {store.count()}")

    # 2. Train: SFT on the successful trajectories (TRL's SFTTrainer under the hood).
    config = agentkd.SFTRunConfig(max_steps=args.train_steps, max_minutes=args.train_minutes, batch_size=4,
                                  max_length=args.max_length)
    trained = agentkd.train_sft(store, args.student, workdir / "student", config)
    print(f"trained {trained.base} for {trained.steps} steps into {workdir / 'student'}")

    # 3. Evaluate on unseen tasks: greedy decoding and the expert as the reference row.
    results = agentkd.evaluate(workdir / "student", agentkd.parse_configs("greedy,teacher"), store=store,
                               max_tasks=args.tasks, max_steps=args.max_steps, workers=args.tasks)
    for config in results.configs:
        overall = config.metrics.overall
        print(f"{config.name:>8}: {overall.successes}/{overall.episodes} solved, {overall.mean_steps:.1f} steps")


if __name__ == "__main__":
    main()
