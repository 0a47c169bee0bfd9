"""What every training stage shares: loading its data, its trainer arguments, and how a run ends.

A run reads trajectories from the experience store, starts from a student (see
:func:`agentkd.models.student.resolve_student`), trains with a TRL/transformers trainer and
finishes with :func:`finish_run`: the student saved with ``save_pretrained`` (LoRA adapters
merged, so plain transformers loads it), its card extended with this stage, and a
``training_summary.json`` with data counts, steps, losses, time and tokens/s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from agentkd.distill.datasets import DataReport, EmptyDatasetError, trajectory_messages
from agentkd.models.student import StudentCard
from agentkd.schema import Trajectory
from agentkd.splits import split_name

__all__ = ["SUMMARY_FILE", "StageConfig", "finish_run", "load_trajectories", "student_texts", "time_budget_callback",
           "tokens_trained", "training_arguments"]

SUMMARY_FILE = "training_summary.json"


def load_trajectories(store: Any, **filters: Any) -> list[Trajectory]:
    """All trajectories matching ``filters``; a clear error when there are none.

    A ``split`` given as the path the tasks were read from matches the name its tasks carry (:func:`split_name`).
    """
    if filters.get("split"):
        filters["split"] = split_name(filters["split"])
    trajectories = list(store.iterate(**filters))
    if not trajectories:
        shown = ", ".join(f"{k}={v}" for k, v in filters.items() if v is not None) or "any"
        raise EmptyDatasetError(
            f"the store at {store.location} has no trajectories ({shown}). Record some first, e.g. "
            f"`agentkd collect --env household --split train --teacher expert --store {store.location}`."
        )
    return trajectories


def student_texts(trajectories: Iterable[Trajectory]) -> list[str]:
    """The text a tiny student's tokenizer is trained on: every message of every episode."""
    texts: list[str] = []
    for traj in trajectories:
        if traj.steps:
            texts += [m["content"] for m in trajectory_messages(traj)]
    return texts


@dataclass
class StageConfig:
    """What every stage's config has (each stage documents its own defaults).

    Attributes:
        epochs: passes over the data (ignored when ``max_steps`` > 0).
        max_steps: optimizer steps; ``-1`` trains for ``epochs``.
        batch_size: examples per device per step.
        grad_accum: gradient accumulation steps.
        learning_rate: ``None`` picks the stage's default for the student (:meth:`pick_learning_rate`).
        warmup_ratio: share of the steps spent warming the learning rate up.
        logging_steps: log (and record in the summary's losses) every this many steps.
        seed: seeds data order, sampling and initialisation.
        max_minutes: stop training after this many minutes (the student is saved as it is then);
            ``None``: no time limit.
        gradient_checkpointing: recompute activations in the backward pass to save memory (TRL turns
            it on by default). It costs a third more compute, which a small student on a CPU or a
            roomy GPU does not need to pay; off by default.
    """

    #: Default learning rates: (tiny student, LoRA adapters, full fine-tuning of a pretrained model).
    DEFAULT_RATES: ClassVar[tuple[float, float, float]] = (1e-3, 1e-4, 2e-5)

    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 8
    grad_accum: int = 1
    learning_rate: float | None = None
    warmup_ratio: float = 0.05
    logging_steps: int = 5
    seed: int = 0
    max_minutes: float | None = None
    gradient_checkpointing: bool = False

    def pick_learning_rate(self, *, tiny: bool, lora: bool = False) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        tiny_rate, lora_rate, full_rate = self.DEFAULT_RATES
        return tiny_rate if tiny else lora_rate if lora else full_rate

    def callbacks(self, given: list[Any] | None = None) -> list[Any]:
        """The run's callbacks: ``given`` plus the time budget's, when there is one."""
        return [*(given or []), *time_budget_callback(self.max_minutes, self.warmup_ratio)]

    def trainer_arguments(self, out_dir: str | Path, learning_rate: float, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for the stage's ``TrainingArguments`` (a TRL config or transformers' own)."""
        return training_arguments(
            out_dir, num_train_epochs=self.epochs, max_steps=self.max_steps,
            per_device_train_batch_size=self.batch_size, gradient_accumulation_steps=self.grad_accum,
            learning_rate=learning_rate, warmup_steps=self.warmup_ratio, logging_steps=self.logging_steps,
            seed=self.seed, **{checkpointing_argument(): self.gradient_checkpointing}, **overrides)


def checkpointing_argument() -> str:
    """``activation_checkpointing`` where transformers has it (``gradient_checkpointing`` is its old name)."""
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    return "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"


def time_budget_callback(max_minutes: float | None, warmup_ratio: float = 0.05) -> list[Any]:
    """A callback that ends training once ``max_minutes`` have passed (none when there is no budget).

    Under a budget the learning rate follows the run's progress, the larger of the time spent and
    the steps done (whichever ends the run first): a linear warm-up over the first ``warmup_ratio``,
    then a cosine decay that reaches zero at the end. A step-based schedule would be cut off mid-way
    at an unknown step, with the rate still high.
    """
    if not max_minutes:
        return []
    import math

    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.monotonic()
            self.seconds = 60.0 * max_minutes

        def on_step_end(self, args: Any, state: Any, control: Any, optimizer: Any = None, lr_scheduler: Any = None,
                        **kwargs: Any) -> Any:
            done = (time.monotonic() - self.started) / self.seconds
            if getattr(state, "max_steps", 0):
                done = max(done, state.global_step / state.max_steps)
            if done >= 1.0:
                control.should_training_stop = True
            elif optimizer is not None:
                if done < warmup_ratio:
                    scale = max(done / warmup_ratio, 0.01)
                else:
                    scale = 0.5 * (1.0 + math.cos(math.pi * (done - warmup_ratio) / (1.0 - warmup_ratio)))
                for group in optimizer.param_groups:
                    group.setdefault("agentkd_peak_lr", group.get("initial_lr", group["lr"]))
                    group["lr"] = group["agentkd_peak_lr"] * scale
                if lr_scheduler is not None and hasattr(lr_scheduler, "_last_lr"):  # what the Trainer logs
                    lr_scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
            return control

    return [TimeBudget()]


def training_arguments(out_dir: str | Path, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments shared by every stage's config (TRL configs extend ``TrainingArguments``).

    bf16 mixed precision (autocast) on GPUs that have it and on CPUs that compute it natively
    (AMX / AVX512-BF16, :func:`agentkd.models.student.cpu_has_fast_bf16`); float32 elsewhere.
    Checkpoints are not written during the run (the final student is); logs go nowhere but the
    summary.
    """
    import torch

    from agentkd.models.student import cpu_has_fast_bf16

    on_gpu = torch.cuda.is_available()
    args: dict[str, Any] = dict(
        output_dir=str(out_dir),
        report_to="none",
        save_strategy="no",
        logging_steps=5,
        logging_first_step=True,
        use_cpu=not on_gpu,
        bf16=torch.cuda.is_bf16_supported() if on_gpu else cpu_has_fast_bf16(),
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=False,
        seed=0,
    )
    args.update(overrides)
    return args


def tokens_trained(trainer: Any, data_tokens: int) -> int:
    """Non-padding tokens the run consumed: Trainer's own count, else the data's tokens times the epochs."""
    seen = int(getattr(trainer.state, "num_input_tokens_seen", 0) or 0)
    return seen or data_tokens * max(1, round(trainer.state.epoch or 1))


def _losses(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    keep = ("step", "epoch", "loss", "learning_rate", "grad_norm", "reward", "rewards/chosen", "rewards/rejected")
    return [{k: v for k, v in entry.items() if k in keep or k.startswith(("logps/", "env/"))}
            for entry in log_history if "loss" in entry]


def finish_run(
    trainer: Any,
    train_output: Any,
    *,
    stage: str,
    out_dir: str | Path,
    card: StudentCard,
    data: DataReport,
    started: float,
    tokens: int,
    config: dict[str, Any],
) -> dict[str, Any]:
    """Save the student, its card and ``training_summary.json``; return the summary.

    ``tokens`` is the number of tokens the run trained on (padding excluded), so tokens/s is the
    useful throughput whatever the batching.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = trainer.model
    if hasattr(model, "merge_and_unload"):  # LoRA: save a plain model that loads without peft
        model = model.merge_and_unload()
    model.save_pretrained(out)
    tokenizer = getattr(trainer, "processing_class", None)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)

    train_seconds = float(train_output.metrics.get("train_runtime", time.perf_counter() - started))
    losses = _losses(trainer.state.log_history)
    summary = {
        "stage": stage,
        "student": str(out),
        "base": card.base,
        "data": data.as_dict(),
        "steps": int(trainer.state.global_step),
        "epochs": float(trainer.state.epoch or 0.0),
        "final_loss": losses[-1]["loss"] if losses else None,
        "train_loss": float(train_output.training_loss),
        "losses": losses,
        "train_seconds": round(train_seconds, 3),
        "wall_seconds": round(time.perf_counter() - started, 3),
        "tokens": int(tokens),
        "tokens_per_second": round(tokens / train_seconds, 1) if train_seconds > 0 else None,
        "device": str(trainer.args.device),
        "config": config,
    }
    card.stages.append({k: summary[k] for k in ("stage", "steps", "train_loss", "tokens")} | {"data": data.kept})
    card.save(out)
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return summary
