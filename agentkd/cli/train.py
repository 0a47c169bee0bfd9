"""`agentkd train sft|redi|grpo`: train students.

Runs the same under ``accelerate launch -m agentkd.cli train ...`` (or torchrun): the main process
opens the store, builds the data and writes the results; every process trains.
"""

from __future__ import annotations

from typing import Any

import typer

from agentkd.cli.common import _MINUTES_HELP, _SPLIT_HELP, _STUDENT_HELP, DEFAULT_STORE, _fail, _open_store, app
from agentkd.errors import AgentKDError

train_app = typer.Typer(no_args_is_help=True, help="Train students: sft, then redi, then grpo.")
app.add_typer(train_app, name="train")

# Options every stage has (one definition, so the three commands say the same).
_GRAD_ACCUM = typer.Option(1, min=1, help="Gradient accumulation steps (global batch = batch size x accumulation "
                           "x processes).")
_SEED = typer.Option(0, help="Seeds data order, sampling and a tiny student's initialisation.")
_CHECKPOINTING = typer.Option(False, "--gradient-checkpointing",
                              help="Recompute activations in the backward pass: less memory, a third more compute.")
_REPORT_TO = typer.Option("none", help="Also log to: none, tensorboard (into OUT/runs), wandb, ... (comma-separated).")
_SAVE_STEPS = typer.Option(None, min=1, help="Write a checkpoint (OUT/checkpoint-N) every this many steps.")
_RESUME = typer.Option(None, help="Continue from this checkpoint directory, or `last` (the newest in --out).")
_PUSH = typer.Option(False, "--push-to-hub", help="Upload the student and its model card to the Hugging Face Hub "
                     "(needs the network and `huggingface-cli login`).")
_HUB_ID = typer.Option(None, help="Hub repository for --push-to-hub (default: the --out folder's name).")
_CONFIG = typer.Option(None, "--config", help="YAML file of fields of the stage's TRL config (SFTConfig, the REDI "
                       "TrainingArguments, GRPOConfig), applied last, e.g. `deepspeed: ds.json` or `beta: 0.04`.")


def _shared(grad_accum: int, seed: int, gradient_checkpointing: bool, report_to: str, save_steps: int | None,
            resume_from_checkpoint: str | None, push_to_hub: bool, hub_model_id: str | None,
            config: str | None) -> dict[str, Any]:
    """The StageConfig fields every command sets the same way (the config file read here: errors are one line)."""
    from agentkd.train.common import TrainConfigError, load_config_file

    try:
        overrides = load_config_file(config) if config else {}
    except TrainConfigError as exc:
        _fail(str(exc))
    return {"grad_accum": grad_accum, "seed": seed, "gradient_checkpointing": gradient_checkpointing,
            "report_to": report_to, "save_steps": save_steps, "resume_from_checkpoint": resume_from_checkpoint,
            "push_to_hub": push_to_hub, "hub_model_id": hub_model_id, "overrides": overrides}


def _main_store(store: str):
    """The store, opened by the main process only (under a launcher the others get None and wait for its data)."""
    from agentkd.train.distributed import is_main_process

    return _open_store(store) if is_main_process() else None


def _run_stage(stage: str, run) -> None:
    """Run a training stage; bad input becomes a one-line error, the outcome a short table (main process)."""
    from rich.console import Console
    from rich.table import Table

    from agentkd.train.distributed import MainProcessFailed, is_main_process

    try:
        summary = run()
    except MainProcessFailed:  # under a launcher: the main process prints the reason once
        raise typer.Exit(code=2) from None
    except (AgentKDError, ValueError) as exc:  # StoreError, EmptyDatasetError, StudentNotFound, bad settings
        _fail(str(exc))
    if not is_main_process():
        return
    table = Table(title=f"{stage} → {summary['student']}")
    table.add_column("")
    table.add_column("", justify="right")
    data = summary["data"]
    dropped = ", ".join(f"{k} {v}" for k, v in data.get("dropped", {}).items()) or "none"
    first = summary["losses"][0]["loss"] if summary["losses"] else None
    rows = [
        ("examples", f"{data['kept']} (of {data['considered']}; truncated {data['truncated']}; dropped: {dropped})"),
        ("steps", str(summary["steps"])),
        ("loss (first → last)", f"{first:.4f} → {summary['final_loss']:.4f}" if first is not None else "-"),
        ("train time", f"{summary['train_seconds']:.1f} s"),
        ("tokens/s", f"{summary['tokens_per_second']}"),
    ]
    if "pairs" in data:
        rows.insert(1, ("pairs", ", ".join(f"{k} {v}" for k, v in data["pairs"].items())))
    if "rollouts" in data:
        r = data["rollouts"]
        rows.insert(1, ("rollouts", f"{r.get('episodes')} episodes, win rate {r.get('win_rate', 0):.0%}"))
    for name, value in rows:
        table.add_row(name, value)
    console = Console(soft_wrap=True)
    console.print(table)
    console.print(f"summary: {summary['student']}/training_summary.json; model card: {summary['student']}/README.md")



@train_app.command("sft")
def train_sft_cmd(
    store: str = typer.Option(DEFAULT_STORE, help="Store folder, or http://host:port of a Chroma server."),
    student: str = typer.Option("tiny", help=_STUDENT_HELP),
    out: str = typer.Option(..., help="Directory for the trained student."),
    env: str = typer.Option("household", help="Train on this environment's trajectories."),
    split: str = typer.Option("train", help="Train on this split's trajectories (a name, or the path they were "
                              "collected from: its folder name or file stem is the split)."),
    epochs: float = typer.Option(3.0, help="Passes over the data."),
    max_steps: int = typer.Option(-1, help="Optimizer steps (overrides --epochs when > 0)."),
    batch_size: int = typer.Option(8, min=1, help="Examples (packed rows) per step."),
    lr: float = typer.Option(None, help="Learning rate (default: 1e-3 from scratch, 1e-4 LoRA, 2e-5 full)."),
    max_length: int = typer.Option(2048, min=64, help="Longest example in tokens; longer ones lose their last turns."),
    batching: str = typer.Option("auto", help="auto, packed (padding-free), grouped (padded, similar lengths) "
                                 "or padded; auto packs only where flash attention runs on a GPU."),
    lora: bool = typer.Option(False, "--lora", help="Train LoRA adapters (merged into the saved model)."),
    task_types: str = typer.Option(None, help="Only these task types, comma-separated."),
    icd: bool = typer.Option(False, "--icd", help="In-context distillation: one example per step, its prompt "
                             "showing the teacher's most similar steps (never of its own task); evaluate with +icd."),
    lora_r: int = typer.Option(16, min=1, help="LoRA rank (with --lora)."),
    max_minutes: float = typer.Option(None, help=_MINUTES_HELP),
    grad_accum: int = _GRAD_ACCUM,
    seed: int = _SEED,
    gradient_checkpointing: bool = _CHECKPOINTING,
    report_to: str = _REPORT_TO,
    save_steps: int = _SAVE_STEPS,
    resume_from_checkpoint: str = _RESUME,
    push_to_hub: bool = _PUSH,
    hub_model_id: str = _HUB_ID,
    config_file: str = _CONFIG,
    allow_download: bool = typer.Option(False, "--allow-download", help="Fetch a hub model that is not cached."),
) -> None:
    """Stage 1: supervised fine-tuning on the store's successful trajectories (TRL SFTTrainer)."""
    from agentkd.train.sft import SFTRunConfig, train_sft

    config = SFTRunConfig(env=env, split=split, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                          learning_rate=lr, max_length=max_length, batching=batching, lora=lora, lora_r=lora_r, icd=icd,
                          max_minutes=max_minutes,
                          task_types=[t.strip() for t in task_types.split(",") if t.strip()] if task_types else None,
                          **_shared(grad_accum, seed, gradient_checkpointing, report_to, save_steps,
                                    resume_from_checkpoint, push_to_hub, hub_model_id, config_file))
    experience = _main_store(store)
    _run_stage("sft", lambda: train_sft(experience, student, out, config, allow_download=allow_download))


@train_app.command("redi")
def train_redi_cmd(
    store: str = typer.Option(DEFAULT_STORE, help="Store folder, or http://host:port of a Chroma server."),
    student: str = typer.Option(..., help="The SFT student's directory (or any model: " + _STUDENT_HELP + ")"),
    out: str = typer.Option(..., help="Directory for the refined student."),
    env: str = typer.Option("household", help="Use this environment's trajectories."),
    split: str = typer.Option("train", help="Use this split's trajectories (a name, or the path they were "
                              "collected from)."),
    alpha: float = typer.Option(0.8, help="Weight of the negative (failed) term."),
    epochs: float = typer.Option(1.0, help="Passes over the pairs."),
    max_steps: int = typer.Option(-1, help="Optimizer steps (overrides --epochs when > 0)."),
    batch_size: int = typer.Option(8, min=1, help="Pairs per step."),
    lr: float = typer.Option(None, help="Learning rate (default: 1e-4 tiny students, 1e-6 pretrained)."),
    max_length: int = typer.Option(2048, min=64, help="Longest prompt + continuation; longer pairs are left out."),
    step_pairs: bool = typer.Option(True, "--step-pairs/--no-step-pairs",
                                    help="Add step pairs from the environment's expert."),
    max_minutes: float = typer.Option(None, help=_MINUTES_HELP),
    grad_accum: int = _GRAD_ACCUM,
    seed: int = _SEED,
    gradient_checkpointing: bool = _CHECKPOINTING,
    report_to: str = _REPORT_TO,
    save_steps: int = _SAVE_STEPS,
    resume_from_checkpoint: str = _RESUME,
    push_to_hub: bool = _PUSH,
    hub_model_id: str = _HUB_ID,
    config_file: str = _CONFIG,
    allow_download: bool = typer.Option(False, "--allow-download", help="Fetch a hub model that is not cached."),
) -> None:
    """Stage 2: REDI on successful vs failed trajectories (record failures with `agentkd collect --teacher DIR`)."""
    from agentkd.train.redi import RediRunConfig, train_redi

    config = RediRunConfig(env=env, split=split, alpha=alpha, epochs=epochs, max_steps=max_steps,
                           batch_size=batch_size, learning_rate=lr, max_length=max_length, step_pairs=step_pairs,
                           max_minutes=max_minutes,
                           **_shared(grad_accum, seed, gradient_checkpointing, report_to, save_steps,
                                     resume_from_checkpoint, push_to_hub, hub_model_id, config_file))
    experience = _main_store(store)
    _run_stage("redi", lambda: train_redi(experience, student, out, config, allow_download=allow_download))


@train_app.command("grpo")
def train_grpo_cmd(
    student: str = typer.Option(..., help=_STUDENT_HELP),
    out: str = typer.Option(..., help="Directory for the trained student."),
    env: str = typer.Option("household", help="Environment to play in."),
    split: str = typer.Option("train", help="Split whose tasks are played: " + _SPLIT_HELP + "."),
    max_tasks: int = typer.Option(64, min=1, help="Tasks drawn from the split."),
    max_steps: int = typer.Option(100, min=1, help="Optimizer steps."),
    num_generations: int = typer.Option(8, min=2, help="Episodes per task in a group."),
    batch_size: int = typer.Option(8, min=1, help="Episodes per step (a multiple of --num-generations)."),
    max_turns: int = typer.Option(20, min=1, help="Replies per episode at most."),
    max_new_tokens: int = typer.Option(96, min=1, help="Tokens per reply at most."),
    lr: float = typer.Option(None, help="Learning rate (default: 1e-4 tiny, 2e-5 LoRA, 1e-6 full)."),
    invalid_penalty: float = typer.Option(0.1, help="Reward subtracted per invalid action."),
    temperature: float = typer.Option(1.0, help="Sampling temperature of the rollouts."),
    beta: float = typer.Option(0.0, min=0.0, help="KL coefficient against the starting model (0: no reference "
                               "model is loaded; e.g. 0.04 for long runs on a pretrained student)."),
    lora: bool = typer.Option(False, "--lora", help="Train LoRA adapters (merged into the saved model)."),
    lora_r: int = typer.Option(16, min=1, help="LoRA rank (with --lora)."),
    max_minutes: float = typer.Option(None, help=_MINUTES_HELP),
    grad_accum: int = _GRAD_ACCUM,
    seed: int = _SEED,
    gradient_checkpointing: bool = _CHECKPOINTING,
    report_to: str = _REPORT_TO,
    save_steps: int = _SAVE_STEPS,
    resume_from_checkpoint: str = _RESUME,
    push_to_hub: bool = _PUSH,
    hub_model_id: str = _HUB_ID,
    config_file: str = _CONFIG,
    allow_download: bool = typer.Option(False, "--allow-download", help="Fetch a hub model that is not cached."),
) -> None:
    """Stage 3: GRPO with multi-turn rollouts in the environment and its reward (TRL GRPOTrainer)."""
    from agentkd.train.grpo import GRPORunConfig, train_grpo

    config = GRPORunConfig(env=env, split=split, max_tasks=max_tasks, max_steps=max_steps,
                           num_generations=num_generations, batch_size=batch_size, max_turns=max_turns,
                           max_new_tokens=max_new_tokens, learning_rate=lr, invalid_action_penalty=invalid_penalty,
                           temperature=temperature, beta=beta, lora=lora, lora_r=lora_r, max_minutes=max_minutes,
                           **_shared(grad_accum, seed, gradient_checkpointing, report_to, save_steps,
                                     resume_from_checkpoint, push_to_hub, hub_model_id, config_file))
    _run_stage("grpo", lambda: train_grpo(student, out, config, allow_download=allow_download))
