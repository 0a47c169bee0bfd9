"""SFT throughput benchmark: padded, length-grouped and padding-free packed batches, side by side.

    from agentkd.bench.train import bench_sft
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

__all__ = ["bench_sft", "bench_sft_vs_loop"]


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
            mean_tokens = summary.data.tokens / max(1, summary.data.kept)
            results[mode] = {"tokens": summary.tokens, "train_seconds": summary.train_seconds,
                             "tokens_per_second": summary.tokens_per_second, "steps": summary.steps,
                             "rows_per_step": rows, "train_loss": summary.train_loss}
        results["mean_example_tokens"] = round(mean_tokens or 0, 1)
        for mode in ("grouped", "packed"):
            results[f"{mode}_vs_padded"] = round(results[mode]["tokens_per_second"]
                                                 / results["padded"]["tokens_per_second"], 2)
        store.close()
    return results


def _episodes(split: str):
    from agentkd.bench.episodes import expert_trajectories

    # ~10 steps per episode: ask for plenty of steps and stop after enough episodes.
    return expert_trajectories(10_000_000, split=split)


def bench_sft_vs_loop(student: str = "smollm2-135m", episodes: int = 32, batch_size: int = 4, steps: int = 8,
                      max_length: int = 2048, precision_tokens: int = 512, split: str = "train") -> dict[str, Any]:
    """agentkd's SFT (TRL) vs a plain PyTorch loop on the same batches, and float32 vs bf16 autocast.

    The SFT run trains ``steps`` steps of ``batch_size`` length-grouped examples; ``steps`` batches
    of its data loader (the same collated, length-grouped batches) then go through a plain
    ``model(**batch).loss.backward(); AdamW.step()`` loop in float32. Precision is compared on one example cut to
    ``precision_tokens`` (bf16 can be 25x slower on CPUs without native bf16): one float32 and one
    bf16-autocast step each. Tokens/s counts non-padding tokens.
    """
    import time

    import torch
    from transformers import TrainerCallback

    from agentkd.models.student import cpu_has_fast_bf16, load_student
    from agentkd.store import ExperienceStore
    from agentkd.train.sft import SFTRunConfig, train_sft

    class KeepLoader(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, train_dataloader: Any = None,
                           **kwargs: Any) -> None:
            self.loader = train_dataloader

    keep = KeepLoader()
    with tempfile.TemporaryDirectory(prefix="agentkd-bench-loop-") as tmp:
        root = Path(tmp)
        store = ExperienceStore(root / "store", spool_dir=root / "spool")
        store.upsert(list(itertools.islice(_episodes(split), episodes)))
        config = SFTRunConfig(split=split, max_steps=steps, batch_size=batch_size, max_length=max_length,
                              batching="grouped", logging_steps=10_000, learning_rate=1e-5)
        summary = train_sft(store, student, root / "sft", config, callbacks=[keep])
        store.close()
        batches = list(itertools.islice(iter(keep.loader), steps))

        def plain(autocast: bool, batches: list[dict[str, Any]]) -> dict[str, float]:
            model, _ = load_student(root / "sft", dtype=torch.float32, device="cpu")  # same architecture
            model.train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
            tokens, started = 0, time.perf_counter()
            for batch in batches:
                inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels") if k in batch}
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    loss = model(**inputs).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                tokens += int(inputs["attention_mask"].sum())
            seconds = time.perf_counter() - started
            return {"steps": len(batches), "tokens": tokens, "seconds": round(seconds, 2),
                    "tokens_per_second": round(tokens / seconds, 1)}

        loop_fp32 = plain(False, batches)
        one = {k: batches[0][k][:1, :precision_tokens] for k in ("input_ids", "attention_mask", "labels")}
        one["labels"] = one["input_ids"].clone()  # every position trained: the same work whatever the mask
        precision_fp32, loop_bf16 = plain(False, [one]), plain(True, [one])
    sft = {"steps": summary.steps, "tokens": summary.tokens, "seconds": summary.train_seconds,
           "tokens_per_second": summary.tokens_per_second}
    return {"student": student, "batch_size": batch_size, "cpu_native_bf16": cpu_has_fast_bf16(),
            "sft": sft, "loop_fp32": loop_fp32, "precision_fp32": precision_fp32, "loop_bf16": loop_bf16,
            "sft_vs_loop": round(sft["tokens_per_second"] / loop_fp32["tokens_per_second"], 2),
            "bf16_vs_fp32": round(loop_bf16["tokens_per_second"] / precision_fp32["tokens_per_second"], 2)}
