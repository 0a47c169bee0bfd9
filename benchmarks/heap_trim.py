"""A replay evaluation's resident memory and time with and without trimming the heap after each engine call.

    python benchmarks/heap_trim.py STUDENT                      # sc@8, the first 12 valid_unseen tasks, 20 steps
    python benchmarks/heap_trim.py STUDENT --tasks 24 --config greedy --max-steps 50

On the CPU a replay engine frees and reallocates every episode's key/value tensors at each step, each a
little longer than before; glibc serves them from the heap and keeps the freed holes resident. The engine
now returns free pages after each call (:func:`agentkd.models.student.trim_cpu_heap`). Each setting runs
the same evaluation in its own process, side by side in one run: resident memory after each finished
episode, wall time, and each task's outcome (sampling is seeded per episode, so both must agree).
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def child(student: str, trim: bool, config: str, tasks: int, max_steps: int, workers: int) -> None:
    """Runs the evaluation; prints one JSON line."""
    from agentkd.eval.run import _memory_gb, evaluate, parse_configs
    from agentkd.replay.engine import ReplayEngine

    engine = ReplayEngine(student, trim_heap=trim)
    memory: list[float] = []
    started = time.perf_counter()
    results = evaluate(engine, parse_configs(config), max_tasks=tasks, max_steps=max_steps, workers=workers,
                       on_episode=lambda *_: memory.append(round(_memory_gb(), 2)))
    episodes = sorted(results.configs[0].episodes, key=lambda e: e.task_id)
    print(json.dumps({"seconds": round(time.perf_counter() - started), "memory_gb": memory,
                      "outcomes": {e.task_id: [e.success, e.steps] for e in episodes}}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("student")
    parser.add_argument("--config", default="sc@8")
    parser.add_argument("--tasks", type=int, default=12)
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--child", choices=["trim", "keep"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.student, args.child == "trim", args.config, args.tasks, args.max_steps, args.workers)
        return 0

    rows = {}
    for mode in ("keep", "trim"):
        out = subprocess.run([sys.executable, __file__, args.student, "--child", mode, "--config", args.config,
                              "--tasks", str(args.tasks), "--max-steps", str(args.max_steps),
                              "--workers", str(args.workers)], capture_output=True, text=True, check=True)
        rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        row = rows[mode]
        print(f"{mode:>4}: {row['seconds']:>5} s, memory {row['memory_gb'][0]:.1f} -> {max(row['memory_gb']):.1f} GB "
              f"(after each episode: {' '.join(f'{m:.1f}' for m in row['memory_gb'])})", flush=True)
    keep, trim = rows["keep"], rows["trim"]
    same = keep["outcomes"] == trim["outcomes"]
    solved = sum(ok for ok, _ in trim["outcomes"].values())
    print(f"trim vs keep: {trim['seconds'] / keep['seconds']:.2f}x the time, peak {max(trim['memory_gb']):.1f} GB "
          f"vs {max(keep['memory_gb']):.1f} GB; {solved}/{len(trim['outcomes'])} solved, "
          f"{'the same' if same else 'DIFFERENT'} outcome and steps on every task")
    print(json.dumps(rows))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
