"""GPU check for the training stages: SFT and GRPO steps at Qwen2.5-0.5B's size, tokens/s and peak memory.

    python benchmarks/gpu_train.py                 # on a GPU machine (a few minutes)
    python benchmarks/gpu_train.py --dims tiny     # a quick CPU smoke run of the same code path

The student is randomly initialised with Qwen2.5-0.5B's dimensions (24 layers, hidden 896, 14
heads / 2 KV heads, MLP 4,864, vocabulary 151,936, tied embeddings: 494M parameters), so nothing
is downloaded. Its tokenizer is a small byte-level BPE trained on household text; the ids the
tokenizer lacks are suppressed at generation, so rollouts stay decodable. Training data are real
household expert episodes in a temporary experience store. Each stage runs through the same
functions as ``agentkd train`` (bf16 autocast on GPUs that have it), and the script prints one
line of JSON per measurement. It is not part of the test suite.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

QWEN25_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                  num_key_value_heads=2, vocab_size=151_936, max_position_embeddings=32_768, rope_theta=1_000_000.0)
TINY = dict(hidden_size=192, intermediate_size=768, num_hidden_layers=4, num_attention_heads=6, num_key_value_heads=2,
            vocab_size=8192, max_position_embeddings=4096, rope_theta=10_000.0)


def build_student(path: Path, dims: dict, texts: list[str]) -> int:
    """A random Qwen2 model of ``dims`` with a household tokenizer, saved at ``path``; returns its parameter count."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    from agentkd.models.tiny import build_tiny_model

    build_tiny_model(path, texts)  # tokenizer (and a tiny model, replaced below)
    tokenizer = AutoTokenizer.from_pretrained(path)
    n_tokens = len(tokenizer)
    config = Qwen2Config(tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **dims)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=[tokenizer.eos_token_id], pad_token_id=tokenizer.pad_token_id,
        suppress_tokens=list(range(n_tokens, dims["vocab_size"])),  # ids the tokenizer cannot decode
    )
    model.save_pretrained(path)
    return sum(p.numel() for p in model.parameters())


def peak_memory_gib() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dims", choices=["qwen2.5-0.5b", "tiny"], default="qwen2.5-0.5b")
    parser.add_argument("--episodes", type=int, default=64, help="expert episodes in the SFT data")
    parser.add_argument("--sft-steps", type=int, default=10)
    parser.add_argument("--sft-batch", type=int, default=8)
    parser.add_argument("--grpo-steps", type=int, default=2)
    parser.add_argument("--generations", type=int, default=8, help="GRPO episodes per task (and per step)")
    args = parser.parse_args()

    import torch

    from agentkd.bench.episodes import expert_trajectories
    from agentkd.store import ExperienceStore
    from agentkd.train.common import student_texts
    from agentkd.train.grpo import GRPORunConfig, train_grpo
    from agentkd.train.sft import SFTRunConfig, flash_attention_available, train_sft

    dims = QWEN25_05B if args.dims == "qwen2.5-0.5b" else TINY
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(json.dumps({"device": device, "dims": args.dims, "flash_attention": flash_attention_available(),
                      "torch": torch.__version__}), flush=True)

    with tempfile.TemporaryDirectory(prefix="agentkd-gpu-train-") as tmp:
        root = Path(tmp)
        store = ExperienceStore(root / "store", spool_dir=root / "spool")
        trajectories = list(itertools.islice(expert_trajectories(10_000_000), args.episodes))
        store.upsert(trajectories)
        student = root / "student"
        params = build_student(student, dims, student_texts(trajectories))
        print(json.dumps({"parameters": params}), flush=True)

        batchings = ["padded", "packed"] if flash_attention_available() else ["padded", "grouped"]
        for batching in batchings:
            reset_peak()
            started = time.perf_counter()
            config = SFTRunConfig(max_steps=args.sft_steps, batch_size=args.sft_batch, batching=batching,
                                  max_length=2048, logging_steps=args.sft_steps)
            summary = train_sft(store, student, root / f"sft-{batching}", config)
            print(json.dumps({"stage": "sft", "batching": batching, "steps": summary.steps,
                              "tokens": summary.tokens, "tokens_per_s": summary.tokens_per_second,
                              "train_s": summary.train_seconds, "peak_gib": peak_memory_gib(),
                              "loss": summary.final_loss, "wall_s": round(time.perf_counter() - started, 1)}),
                  flush=True)

        reset_peak()
        config = GRPORunConfig(max_steps=args.grpo_steps, num_generations=args.generations,
                               batch_size=args.generations, max_tasks=4, max_turns=6, max_new_tokens=48,
                               max_completion_length=1024, learning_rate=1e-6)
        summary = train_grpo(root / f"sft-{batchings[0]}", root / "grpo", config)
        rollouts = summary.data.extra("rollouts")
        print(json.dumps({"stage": "grpo", "steps": summary.steps, "episodes": rollouts.get("episodes"),
                          "tokens": summary.tokens, "tokens_per_s": summary.tokens_per_second,
                          "train_s": summary.train_seconds, "peak_gib": peak_memory_gib(),
                          "loss": summary.final_loss}), flush=True)
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
