"""SFT throughput benchmark: padded, length-grouped and padding-free packed batches, side by side.

    from agentkd.train.bench import bench_sft
    bench_sft(episodes=64)   # {"padded": {...}, "grouped": {...}, "packed": {...}, ratios}

Every run trains the same freshly built student (same seed, same tokenizer) for one epoch over the
same expert episodes, with the same number of examples per step on average; tokens/s counts the
tokens trained on (padding excluded), so the ratios are the useful speed-ups.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["bench_sft"]


def bench_sft(episodes: int = 64, batch_size: int = 8, max_length: int = 2048, student: str = "tiny",
              split: str = "train") -> dict[str, Any]:
    """Train one epoch padded, then one epoch packed, on ``episodes`` expert episodes; tokens/s of each."""
    from agentkd.store import ExperienceStore
    from agentkd.train.sft import SFTRunConfig, train_sft

    with tempfile.TemporaryDirectory(prefix="agentkd-bench-sft-") as tmp:
        root = Path(tmp)
        store = ExperienceStore(root / "store", spool_dir=root / "spool")
        store.upsert(list(itertools.islice(_episodes(split), episodes)))
        results: dict[str, Any] = {"episodes": episodes, "student": student, "max_length": max_length}
        mean_tokens = None
        for mode in ("padded", "grouped", "packed"):
            rows = batch_size
            if mode == "packed" and mean_tokens:  # as many examples per step as the padded run, on average
                rows = max(1, round(batch_size * mean_tokens / max_length))
            config = SFTRunConfig(split=split, epochs=1.0, batch_size=rows, max_length=max_length, batching=mode,
                                  logging_steps=10_000)
            summary = train_sft(store, student, root / mode, config)
            mean_tokens = summary["data"]["tokens"] / max(1, summary["data"]["kept"])
            results[mode] = {"tokens": summary["tokens"], "train_seconds": summary["train_seconds"],
                             "tokens_per_second": summary["tokens_per_second"], "steps": summary["steps"],
                             "rows_per_step": rows, "train_loss": summary["train_loss"]}
        results["mean_example_tokens"] = round(mean_tokens or 0, 1)
        for mode in ("grouped", "packed"):
            results[f"{mode}_vs_padded"] = round(results[mode]["tokens_per_second"]
                                                 / results["padded"]["tokens_per_second"], 2)
        store.close()
    return results


def _episodes(split: str):
    from agentkd.store.bench import expert_trajectories

    # ~10 steps per episode: ask for plenty of steps and stop after enough episodes.
    return expert_trajectories(10_000_000, split=split)
