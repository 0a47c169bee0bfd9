"""Stage 1: supervised fine-tuning on successful teacher trajectories, with TRL's ``SFTTrainer``.

Each successful episode becomes one conversation (:func:`agentkd.distill.sft_conversations`);
the loss covers the assistant turns only (``assistant_only_loss``: the chat template's
``{% generation %}`` markers mark what the assistant wrote, its end-of-turn token included).
How examples are batched (``batching``) is a speed choice, measured by ``agentkd bench train``:

- ``packed``: padding-free, best-fit packed into ``max_length`` rows with no attention across
  examples. Fast with varlen (flash) attention kernels; with SDPA on CPU each packed row costs
  full ``max_length``² attention, which makes it slower than padding.
- ``grouped``: padded batches of examples of similar length (little padding, short rows).
- ``padded``: padded batches in random order.
- ``auto`` (default): ``packed`` where flash attention is installed on a GPU, else ``grouped``.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkd.distill.datasets import DataReport, EmptyDatasetError, icd_step_examples, sft_conversations
from agentkd.models.student import PromptFormat, apply_lora, resolve_student
from agentkd.splits import split_name
from agentkd.train.common import (
    TrainConfigError,
    finish_run,
    load_trajectories,
    run_training,
    stage_callbacks,
    student_texts,
    tokens_trained,
    trl_config,
)
from agentkd.train.config import SFTRunConfig
from agentkd.train.distributed import shared_start
from agentkd.train.summary import TrainingSummary

if TYPE_CHECKING:  # pragma: no cover
    from agentkd.store import ExperienceStore

__all__ = ["BATCHING", "SFTRunConfig", "flash_attention_available", "resolve_batching", "train_sft"]


BATCHING = ("auto", "packed", "grouped", "padded")


def flash_attention_available() -> bool:
    """A CUDA device and the flash-attn kernels: what makes padding-free packing pay off."""
    import torch
    from transformers.utils import is_flash_attn_2_available

    return torch.cuda.is_available() and is_flash_attn_2_available()


def resolve_batching(batching: str) -> str:
    if batching not in BATCHING:
        raise TrainConfigError(f"batching must be one of {', '.join(BATCHING)}, not {batching!r}")
    if batching == "auto":
        return "packed" if flash_attention_available() else "grouped"
    return batching


def train_sft(store: ExperienceStore | None, student: str | Path, out_dir: str | Path,
              config: SFTRunConfig | None = None, *,
              allow_download: bool = False, callbacks: list[Any] | None = None) -> TrainingSummary:
    """Train ``student`` (``tiny``, a directory, or a hub name) on the store's trajectories into ``out_dir``.

    Returns the training summary (also written to ``out_dir/training_summary.json``).
    Raises :class:`~agentkd.distill.EmptyDatasetError` when the store has no usable trajectory.
    Under ``accelerate launch`` only the main process reads ``store`` (the others may pass ``None``).

    Example::

        summary = train_sft(ExperienceStore("trajectories/store"), "smollm2-135m", "runs/sft",
                            SFTRunConfig(max_minutes=45, batch_size=1))
        summary.steps, summary.tokens_per_second
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    config = config or SFTRunConfig()
    batching = resolve_batching(config.batching)
    started = time.perf_counter()
    spec = str(student)
    if spec == "tiny":
        spec = f"tiny:{config.tiny_size}"

    def build() -> tuple[Any, Any, Any, tuple[list[dict[str, Any]], DataReport]]:
        """On the main process only: the store read, the student resolved, the examples built."""
        trajectories = load_trajectories(store, env=config.env, split=config.split)
        successes = [t for t in trajectories if t.success] if config.success_only else trajectories
        if not successes:
            raise EmptyDatasetError(
                f"the store at {store.location} has {len(trajectories)} trajectories for env={config.env} "
                f"split={config.split}, and none succeeded: SFT learns from successful episodes. Collect teacher "
                f"trajectories (`agentkd collect --teacher expert --store {store.location}`)."
            )
        model, tokenizer, card = resolve_student(spec, out_dir, student_texts(successes),
                                                 allow_download=allow_download, seed=config.seed)
        if config.icd:
            from agentkd.distill.demos import DemoRetriever

            if not config.env or not config.split:
                raise TrainConfigError("--icd needs an environment and a split: demonstrations come from its "
                                       "teacher steps")
            card.prompt = PromptFormat(max_history=config.icd_history, show_admissible=False, demos=True)
            # The same demonstrations, counted in the same tokens, as at replay (agentkd.eval.run builds its own).
            retriever = DemoRetriever(store, config.env, split=split_name(config.split),
                                      count_tokens=lambda text: len(tokenizer.encode(text, add_special_tokens=False)))
            rows, report = icd_step_examples(trajectories, retriever, tokenizer, fmt=card.prompt,
                                             max_length=config.max_length, task_types=config.task_types,
                                             success_only=config.success_only)
        else:
            rows, report = sft_conversations(trajectories, tokenizer, fmt=card.prompt, max_length=config.max_length,
                                             overlong=config.overlong, task_types=config.task_types,
                                             success_only=config.success_only)
        if not rows:
            raise EmptyDatasetError(f"no SFT example is left after filtering: {report.as_dict()}")
        return model, tokenizer, card, (rows, report)

    model, tokenizer, card, (rows, report) = shared_start(build, spec, out_dir, allow_download=allow_download)
    from_scratch = card.base.startswith("tiny") and not card.stages
    if batching == "packed" and flash_attention_available():
        model.set_attn_implementation("flash_attention_2")  # varlen kernels: no attention across packed examples
    if config.lora:
        model = apply_lora(model, r=config.lora_r, alpha=2 * config.lora_r)

    args = trl_config(
        config,         SFTConfig, out_dir,
        config.pick_learning_rate(tiny=from_scratch, lora=config.lora),
        lr_scheduler_type="cosine",
        weight_decay=config.weight_decay,
        max_length=config.max_length,
        packing=batching == "packed",
        train_sampling_strategy="group_by_length" if batching == "grouped" else "random",
        assistant_only_loss=not config.icd,  # ICD rows are prompt + completion: only the completion is learnt
        shuffle_dataset=True,
        dataset_num_proc=None,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         callbacks=stage_callbacks(config, callbacks))
    if trainer.args.device.type == "cpu":  # score only the labelled positions (see agentkd.train.compact_head)
        from agentkd.train.compact_head import compact_lm_head

        compact_lm_head(model.get_base_model() if hasattr(model, "get_base_model") else model)
    output = run_training(trainer, config)
    return finish_run(trainer, output, stage="sft", out_dir=out_dir, card=card, data=report, started=started,
                      tokens=tokens_trained(trainer, report.tokens), config=asdict(config) | {"batching": batching})
