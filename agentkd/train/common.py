"""What every training stage shares: loading its data, its trainer arguments, and how a run ends.

A run reads trajectories from the experience store, starts from a student (see
:func:`agentkd.models.student.resolve_student`), trains with a TRL/transformers trainer whose
config :func:`trl_config` builds (the stage's settings, :mod:`agentkd.train.config`, then any field
of the TRL config from ``overrides`` — the ``--config FILE.yaml`` of the commands) and finishes with
:func:`finish_run`: the student saved with ``trainer.save_model`` (gathered under ZeRO-3/FSDP;
LoRA adapters merged, so plain transformers loads it), its card extended with this stage, a
``README.md`` model card and a ``training_summary.json`` with data counts, steps, losses, time and
tokens/s. Under ``accelerate launch`` the cards and the summary are written by the main process
only (see :mod:`agentkd.train.distributed`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkd.distill.datasets import DataReport, EmptyDatasetError, trajectory_messages
from agentkd.errors import ConfigError
from agentkd.models.student import StudentCard
from agentkd.schema import Trajectory
from agentkd.splits import split_name
from agentkd.train.config import StageConfig
from agentkd.train.model_card import SUMMARY_FILE, write_model_card
from agentkd.train.summary import DataCounts, TrainingSummary

if TYPE_CHECKING:  # pragma: no cover
    from agentkd.store import ExperienceStore

__all__ = ["SUMMARY_FILE", "TrainConfigError", "finish_run", "load_config_file", "load_trajectories", "run_training",
           "save_student", "stage_callbacks", "student_texts", "time_budget_callback", "tokens_trained",
           "training_arguments", "trl_config"]



class TrainConfigError(ConfigError):
    """A training config file or override is unreadable or names a field the stage's TRL config lacks."""


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML (or JSON) file of TRL config fields; a clear error when it is not one."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise TrainConfigError(f"no such config file: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TrainConfigError(f"{path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise TrainConfigError(f"{path} must be a mapping of config fields to values (e.g. `beta: 0.04`)")
    return data


def load_trajectories(store: ExperienceStore | None, **filters: Any) -> list[Trajectory]:
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


def stage_callbacks(config: StageConfig, given: list[Any] | None = None) -> list[Any]:
    """The run's callbacks: ``given`` plus the time budget's, when there is one."""
    return [*(given or []), *time_budget_callback(config.max_minutes, config.warmup_ratio)]


def _trainer_arguments(config: StageConfig, out_dir: str | Path, learning_rate: float,
                       **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for the stage's ``TrainingArguments`` (a TRL config or transformers' own),
    without ``config.overrides`` (see :func:`trl_config`)."""
    saving = ({"save_strategy": "steps", "save_steps": config.save_steps} if config.save_steps
              else {"save_strategy": "no"})
    hub = {"push_to_hub": True, "hub_model_id": config.hub_model_id} if config.push_to_hub else {}
    return training_arguments(
        out_dir, num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
        learning_rate=learning_rate, warmup_steps=config.warmup_ratio, logging_steps=config.logging_steps,
        seed=config.seed, **{checkpointing_argument(): config.gradient_checkpointing},
        report_to=[r.strip() for r in config.report_to.split(",") if r.strip()] or "none",
        **saving, **hub, **overrides)


def trl_config(config: StageConfig, config_class: type, out_dir: str | Path, learning_rate: float,
               **stage: Any) -> Any:
    """The stage's TRL config: agentkd's settings with the stage's own fields, then ``config.overrides``.

    Raises :class:`TrainConfigError` naming an override that ``config_class`` has no field for.
    """
    known = {f.name for f in fields(config_class) if f.init}
    unknown = sorted(set(config.overrides) - known)
    if unknown:
        raise TrainConfigError(
            f"{config_class.__name__} has no field {', '.join(map(repr, unknown))}: a config file sets fields of "
            f"the stage's TRL config (e.g. num_train_epochs, per_device_train_batch_size, learning_rate)")
    args = _trainer_arguments(config, out_dir, learning_rate, **stage)
    args.update(config.overrides)
    return config_class(**args)


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
    By default no checkpoint is written during the run (the final student is) and logs go nowhere
    but the summary; :func:`trl_config` sets both from the run's settings.
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


def run_training(trainer: Any, config: StageConfig) -> Any:
    """``trainer.train()``, resumed from the checkpoint the config names (if any)."""
    return trainer.train(resume_from_checkpoint=config.resume_argument())


def _sharded(trainer: Any) -> bool:
    """Whether the weights are split across processes (ZeRO-3, FSDP): only ``save_model`` can gather them."""
    return bool(getattr(trainer, "is_fsdp_enabled", False)) or (
        bool(getattr(trainer, "is_deepspeed_enabled", False))
        and getattr(trainer.accelerator.state, "deepspeed_plugin", None) is not None
        and trainer.accelerator.state.deepspeed_plugin.zero_stage == 3)


def save_student(trainer: Any, out: Path) -> None:
    """Write the trained student (weights, config, tokenizer) into ``out`` once, from every process's call.

    A full model goes through ``trainer.save_model``, which gathers sharded weights and writes on
    the main process. LoRA adapters are merged so the directory loads without peft: in place on
    the main process when every process holds the whole model, else saved by ``save_model`` and
    merged back from the saved adapter (the base weights are reloaded from where they came from).
    """
    model = trainer.model
    main = trainer.is_world_process_zero()
    if not hasattr(model, "merge_and_unload"):
        trainer.save_model(str(out))
    elif not _sharded(trainer):
        if main:
            model.merge_and_unload().save_pretrained(out)
            if trainer.processing_class is not None:
                trainer.processing_class.save_pretrained(out)
    else:  # pragma: no cover - needs ZeRO-3 or FSDP on GPUs
        trainer.save_model(str(out))
        if main:
            from peft import AutoPeftModelForCausalLM

            merged = AutoPeftModelForCausalLM.from_pretrained(str(out)).merge_and_unload()
            merged.save_pretrained(out)
            for name in ("adapter_model.safetensors", "adapter_model.bin", "adapter_config.json"):
                (out / name).unlink(missing_ok=True)
    trainer.accelerator.wait_for_everyone()


def _push(trainer: Any, out: Path) -> None:  # pragma: no cover - needs the network
    """Upload the student with agentkd's files (``save_model`` pushed the weights with the Trainer's card)."""
    from huggingface_hub import upload_folder

    upload_folder(repo_id=trainer.hub_model_id, folder_path=str(out), commit_message="agentkd student",
                  ignore_patterns=["checkpoint-*", "checkpoint-*/**", "runs/**"])


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
) -> TrainingSummary:
    """Save the student, its card, its model card and ``training_summary.json``; return the summary.

    Every process calls it (``save_model`` needs them all); the files are written by the main one.
    ``tokens`` is the number of tokens the run trained on (padding excluded; all processes together),
    so tokens/s is the useful throughput whatever the batching.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_student(trainer, out)

    args = trainer.args
    train_seconds = float(train_output.metrics.get("train_runtime", time.perf_counter() - started))
    losses = _losses(trainer.state.log_history)
    summary = TrainingSummary(
        stage=stage, student=str(out), base=card.base, data=DataCounts(**data.as_dict()),
        steps=int(trainer.state.global_step), epochs=float(trainer.state.epoch or 0.0),
        final_loss=losses[-1]["loss"] if losses else None, train_loss=float(train_output.training_loss),
        losses=losses, train_seconds=round(train_seconds, 3), wall_seconds=round(time.perf_counter() - started, 3),
        tokens=int(tokens), tokens_per_second=round(tokens / train_seconds, 1) if train_seconds > 0 else None,
        device=str(args.device), processes=int(args.world_size),
        global_batch=int(args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size),
        config=config)
    if trainer.is_world_process_zero():
        card.stages.append({"stage": stage, "steps": summary.steps, "train_loss": summary.train_loss,
                            "tokens": summary.tokens, "data": data.kept})
        card.save(out)
        summary.save(out)
        write_model_card(out)
        if args.push_to_hub:
            _push(trainer, out)
    trainer.accelerator.wait_for_everyone()
    return summary
