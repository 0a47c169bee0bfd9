"""Replay benchmark: what batching, shared prefill and prefix reuse buy, measured side by side.

    from agentkd.bench.replay import bench_replay
    bench_replay("students/sft")      # or None: a freshly built, random tiny student

Three comparisons on the same student, tasks and machine, in one run:

1. **k samples vs greedy** — one engine call for 8 episodes in mid-episode (their previous step
   cached, as in a run), with ``k`` samples each vs one greedy reply each; the ratio of wall times
   (naive sampling costs k×). Beside it the same k samples decoded one row per sample (agreeing
   samples not merged), and with the prompt's cache copied per sample.
2. **batched vs one after another** — the same episodes played all at once (one engine call per
   step for all of them) vs one episode at a time; the ratio of env steps per second.
3. **prefix reuse vs recompute** — the batched run again with the prefix cache off, so every step
   prefills its whole prompt; the ratio of env steps per second.

Episodes are cut at ``max_steps`` so every run does the same number of steps per episode (a
random student never finishes; a trained one may finish early, which the step counts show).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["bench_replay"]


def _play(policy: Any, tasks: list[Any], workers: int, max_steps: int) -> tuple[int, float]:
    """Play ``tasks`` with ``workers`` concurrent episodes; returns (env steps, seconds)."""
    from agentkd.collection import collect_async, plan_episodes
    from agentkd.eval.run import MemoryStore

    started = time.perf_counter()
    summary = asyncio.run(collect_async(policy, "household", plan_episodes(tasks, len(tasks)), MemoryStore(),
                                        workers=workers, max_steps=max_steps))
    return summary.steps, time.perf_counter() - started


def _tiny_student(root: Path) -> Path:
    from agentkd.bench.episodes import play_expert
    from agentkd.models.tiny import build_tiny_model
    from agentkd.train.common import student_texts
    from environments.household import load_split

    trajectories = [play_expert(task) for task in load_split("valid_seen")[:24]]
    return build_tiny_model(root / "student", student_texts(trajectories))


def bench_replay(student: str | Path | None = None, *, episodes: int = 32, samples: int = 8, max_steps: int = 6,
                 max_new_tokens: int = 48, split: str = "valid_unseen") -> dict[str, Any]:
    """The three ratios (and the figures behind them) for ``student`` on the first ``episodes`` tasks."""
    from agentkd.bench.episodes import play_expert
    from agentkd.distill.datasets import trajectory_messages
    from agentkd.models.generation import render_chat
    from agentkd.replay.engine import GenerationRequest, ReplayEngine
    from agentkd.replay.policy import StudentPolicy
    from environments.household import load_split

    with tempfile.TemporaryDirectory(prefix="agentkd-bench-replay-") as tmp:
        path = Path(student) if student is not None else _tiny_student(Path(tmp))
        engine = ReplayEngine(path)
        shared = engine.shared_attention
        tasks = load_split(split)[:episodes]
        out: dict[str, Any] = {"student": str(student) if student else "random tiny", "episodes": len(tasks),
                               "samples": samples, "max_steps": max_steps, "device": str(engine.device)}

        # 1. one step: k samples vs greedy, in mid-episode (step 4 of 8 expert episodes, the prefix cache
        #    warm from step 3, as in a real run), same prompts for both
        conversations = [trajectory_messages(play_expert(task)) for task in tasks[:8]]
        turn = min(4, min((len(c) - 3) // 2 for c in conversations))
        timings = {}
        runs = (("greedy", 1, 0.0), ("sampled", samples, 0.4), ("row_per_sample", samples, 0.4),
                ("repeated", samples, 0.4))
        for name, n, temperature in runs:
            engine.shared_attention = name != "repeated" and shared  # "repeated": k cache copies
            engine.dedup_samples = name != "row_per_sample"  # a row per sample even where samples agree
            def call(t: int, n: int = n, temperature: float = temperature, name: str = name) -> list[Any]:
                return engine.generate([GenerationRequest(
                    key=(name, i), prompt_ids=engine.encode(render_chat(engine.tokenizer, c[: 2 + 2 * t])), n=n,
                    temperature=temperature, top_p=0.8, max_new_tokens=max_new_tokens)
                    for i, c in enumerate(conversations)])

            call(turn - 1)  # the episode's previous step: its prompt is now cached
            started = time.perf_counter()
            results = call(turn)
            timings[name] = time.perf_counter() - started
            out[f"{name}_tokens"] = sum(len(s.token_ids) for r in results for s in r)
            out[f"{name}_step_s"] = round(timings[name], 3)
        out["k_vs_greedy_time"] = round(timings["sampled"] / timings["greedy"], 2)
        out["repeated_vs_greedy_time"] = round(timings["repeated"] / timings["greedy"], 2)
        out["row_per_sample_vs_greedy_time"] = round(timings["row_per_sample"] / timings["greedy"], 2)
        engine.shared_attention, engine.dedup_samples = shared, True
        out["k_vs_greedy_step"] = turn

        # 2. and 3. whole episodes: batched vs sequential, prefix reuse vs recompute
        engine.clear()
        greedy = StudentPolicy(engine, max_new_tokens=max_new_tokens)
        steps, seconds = _play(greedy, tasks, workers=len(tasks), max_steps=max_steps)
        out["batched_steps"], out["batched_s"] = steps, round(seconds, 2)
        engine.max_cached = 0  # every step prefills its whole prompt
        steps_nc, seconds_nc = _play(greedy, tasks, workers=len(tasks), max_steps=max_steps)
        engine.max_cached = 1024
        out["recompute_s"] = round(seconds_nc, 2)
        steps_seq, seconds_seq = _play(greedy, tasks, workers=1, max_steps=max_steps)
        out["sequential_steps"], out["sequential_s"] = steps_seq, round(seconds_seq, 2)
        rate = steps / seconds
        out["batched_steps_per_s"] = round(rate, 2)
        out["sequential_steps_per_s"] = round(steps_seq / seconds_seq, 2)
        out["batched_vs_sequential"] = round(rate / (steps_seq / seconds_seq), 2)
        out["reuse_vs_recompute"] = round(rate / (steps_nc / seconds_nc), 2)
    return out
