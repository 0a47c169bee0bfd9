"""GPU check for replay: env-steps/s and tokens/s for 1 and 64 concurrent episodes with k = 8, and peak memory.

    python benchmarks/gpu_replay.py                 # on a GPU machine
    python benchmarks/gpu_replay.py --dims tiny     # a quick CPU smoke run of the same code path

The student is randomly initialised at Qwen2.5-0.5B's dimensions (see ``gpu_train.py``), so its
replies run to ``--max-new-tokens`` and every step is invalid: the figures measure the engine, not
the policy. Episodes are household ``valid_unseen`` tasks cut at ``--steps`` steps. One JSON line
per measurement. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_train import QWEN25_05B, TINY, build_student, peak_memory_gib, reset_peak  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dims", choices=["qwen2.5-0.5b", "tiny"], default="qwen2.5-0.5b")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()

    import torch

    from agentkd.bench.episodes import play_expert
    from agentkd.bench.replay import _play
    from agentkd.replay.engine import ReplayEngine
    from agentkd.replay.policy import StudentPolicy
    from agentkd.train.common import student_texts
    from environments.household import load_split

    dims = QWEN25_05B if args.dims == "qwen2.5-0.5b" else TINY
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory(prefix="agentkd-gpu-replay-") as tmp:
        texts = student_texts(play_expert(task) for task in load_split("valid_seen")[:24])
        params = build_student(Path(tmp) / "student", dims, texts)
        engine = ReplayEngine(Path(tmp) / "student")
        print(json.dumps({"device": device, "dims": args.dims, "parameters": params, "dtype": str(engine.dtype),
                          "shared_prefix_attention": engine.shared_attention}), flush=True)
        tasks = load_split("valid_unseen")
        for episodes in (1, 64):
            for samples in (1, args.samples):
                policy = StudentPolicy(engine, samples=samples, max_new_tokens=args.max_new_tokens)
                reset_peak()
                engine.reset_stats()
                started = time.perf_counter()
                steps, seconds = _play(policy, tasks[:episodes], workers=episodes, max_steps=args.steps)
                stats = engine.stats
                print(json.dumps({"episodes": episodes, "samples": samples, "env_steps": steps,
                                  "env_steps_per_s": round(steps / seconds, 2),
                                  "generated_tokens_per_s": round(stats.generated_tokens / seconds, 1),
                                  "prefilled_tokens": stats.prefilled_tokens, "prompt_tokens": stats.prompt_tokens,
                                  "peak_gib": peak_memory_gib(),
                                  "wall_s": round(time.perf_counter() - started, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
