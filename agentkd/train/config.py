"""The training stages' settings: one dataclass per stage, each field with its default and help.

``StageConfig`` has what every stage shares; ``SFTRunConfig``, ``RediRunConfig`` and
``GRPORunConfig`` add their own. Every run records its settings in ``training_summary.json``, and
the ``agentkd train`` commands take their options from these fields (:mod:`agentkd.settings`).
This module imports nothing heavy, so the CLI can read it at start-up; how the settings become a
TRL config is :func:`agentkd.train.common.trl_config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from agentkd.settings import setting
from agentkd.splits import SPLIT_HELP

__all__ = ["GRPORunConfig", "RediRunConfig", "SFTRunConfig", "StageConfig"]

@dataclass
class StageConfig:
    """What every stage's config has (each stage sets its own defaults); a field's help is its documentation."""

    #: Default learning rates: (tiny student, LoRA adapters, full fine-tuning of a pretrained model).
    DEFAULT_RATES: ClassVar[tuple[float, float, float]] = (1e-3, 1e-4, 2e-5)

    epochs: float = setting(1.0, "Passes over the data (ignored when --max-steps > 0).")
    max_steps: int = setting(-1, "Optimizer steps (overrides --epochs when > 0).")
    batch_size: int = setting(8, "Examples per device per step.", min=1)
    grad_accum: int = setting(1, "Gradient accumulation steps (global batch = batch size x accumulation x "
                              "processes).", min=1)
    learning_rate: float | None = setting(None, "Learning rate (default: the stage's, by student; see "
                                          "DEFAULT_RATES).", flag="--lr")
    warmup_ratio: float = setting(0.05, "Share of the steps spent warming the learning rate up.", min=0)
    logging_steps: int = setting(5, "Log (and record in the summary's losses) every this many steps.", min=1)
    seed: int = setting(0, "Seeds data order, sampling and a tiny student's initialisation.")
    max_minutes: float | None = setting(None, "Stop training after this many minutes and save the student as it "
                                        "is (the learning rate then follows the clock to zero).")
    gradient_checkpointing: bool = setting(False, "Recompute activations in the backward pass: less memory, a third "
                                           "more compute (which a small student on a CPU need not pay).")
    report_to: str = setting("none", "Also log to: none, tensorboard (into OUT/runs), wandb, ... (comma-separated).")
    save_steps: int | None = setting(None, "Write a checkpoint (OUT/checkpoint-N) every this many steps.", min=1)
    resume_from_checkpoint: str | None = setting(None, "Continue from this checkpoint directory, or `last` (the "
                                                 "newest in the output directory).")
    push_to_hub: bool = setting(False, "Upload the student and its model card to the Hugging Face Hub (needs the "
                                "network and `huggingface-cli login`).")
    hub_model_id: str | None = setting(None, "Hub repository for --push-to-hub (default: the output folder's name).")
    overrides: dict[str, Any] = setting(
        help="Fields of the stage's TRL config (SFTConfig, the REDI TrainingArguments, GRPOConfig), applied last; "
        "an unknown one is a TrainConfigError (the CLI's --config FILE.yaml).", default_factory=dict, cli=False)

    def pick_learning_rate(self, *, tiny: bool, lora: bool = False) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        tiny_rate, lora_rate, full_rate = self.DEFAULT_RATES
        return tiny_rate if tiny else lora_rate if lora else full_rate

    def resume_argument(self) -> str | bool | None:
        """``resume_from_checkpoint`` as ``Trainer.train`` takes it (``"last"``: True, the newest in output_dir)."""
        value = self.resume_from_checkpoint
        if value in (None, ""):
            return None
        return True if value == "last" else str(value)


_LORA = "Train LoRA adapters (rank --lora-r) instead of all weights; merged into the saved model."
_LORA_R = "LoRA rank (with --lora)."
_TINY_SIZE = "Model size when the student is `tiny` (its tokenizer is trained on the data)."
_TASK_TYPES = "Only these task types (comma-separated on the command line)."


@dataclass
class SFTRunConfig(StageConfig):
    """Settings of an SFT run (:func:`agentkd.train.sft.train_sft`)."""

    epochs: float = 3.0
    learning_rate: float | None = setting(None, "Learning rate (default: 1e-3 from scratch, 1e-4 LoRA, 2e-5 full "
                                          "fine-tuning).", flag="--lr")
    weight_decay: float = setting(0.0, "AdamW weight decay.", min=0)
    max_length: int = setting(2048, "Longest example in tokens (and packed row length).", min=64)
    overlong: str = setting("truncate", "Longer episodes: `truncate` (cut whole turns from the end) or `drop`.")
    batching: str = setting("auto", "auto, packed (padding-free), grouped (padded, similar lengths) or padded; auto "
                            "packs only where flash attention runs on a GPU.")
    lora: bool = setting(False, _LORA)
    lora_r: int = setting(16, _LORA_R, min=1)
    task_types: list[str] | None = setting(None, _TASK_TYPES)
    success_only: bool = setting(True, "Train on successful trajectories only.")
    env: str | None = setting("household", "Train on this environment's trajectories.")
    split: str | None = setting("train", "Train on this split's trajectories (a name, or the path they were "
                                "collected from: its folder name or file stem is the split).")
    tiny_size: str = setting("tiny", _TINY_SIZE)
    icd: bool = setting(False, "In-context distillation: one example per step, its prompt showing the teacher's most "
                        "similar steps from the store (never of its own task); evaluate with +icd.")
    icd_history: int = setting(3, "With --icd, the prompt keeps the last this many steps.", min=0)


@dataclass
class RediRunConfig(StageConfig):
    """Settings of a REDI run (:func:`agentkd.train.redi.train_redi`).

    The learning rate defaults to 1e-4 for a tiny student (an order below its SFT rate) and 1e-6
    for a pretrained one: REDI refines an SFT model, and the paper used rates of that order for
    1.5B models; larger ones let the negative term run away.
    """

    DEFAULT_RATES = (1e-4, 1e-6, 1e-6)  # tiny, (no LoRA option), pretrained

    batch_size: int = setting(8, "Pairs per device per step (the forward pass sees twice as many sequences).", min=1)
    learning_rate: float | None = setting(None, "Learning rate (default: 1e-4 tiny students, 1e-6 pretrained).",
                                          flag="--lr")
    alpha: float = setting(0.8, "Weight of the negative (failed) term; the paper found 0.8 stable where 1.0 "
                           "degrades as the model pushes failures down without bound.", min=0)
    max_length: int = setting(2048, "Longest prompt + continuation in tokens; longer pairs are left out.", min=64)
    step_pairs: bool = setting(True, "Add step pairs from the environment's expert.")
    trajectory_pairs: bool = setting(True, "Add trajectory pairs (a failed vs a successful episode of a task).")
    max_step_pairs_per_episode: int = setting(2, "Step pairs taken from one failed episode (or one teacher episode "
                                              "with marked mistakes) at most.", min=0)
    mistake_pairs: bool = setting(True, "Add step pairs at the teacher's marked mistakes (`collect --mistake-rate`): "
                                  "the expert's move chosen, the mistake rejected.")
    env: str | None = setting("household", "Use this environment's trajectories.")
    split: str | None = setting("train", "Use this split's trajectories (a name, or the path they were collected "
                                "from).")


@dataclass
class GRPORunConfig(StageConfig):
    """Settings of a GRPO run (:func:`agentkd.train.grpo.train_grpo`); steps, not epochs, count a run."""

    DEFAULT_RATES = (1e-4, 2e-5, 1e-6)

    env: str = setting("household", "Environment to play in.")
    split: str = setting("train", "Split whose tasks are played: " + SPLIT_HELP + ".")
    max_tasks: int | None = setting(64, "Train on a random sample of this many tasks (seeded by --seed).", min=1)
    task_types: list[str] | None = setting(None, _TASK_TYPES)
    max_steps: int = setting(100, "Optimizer steps.", min=1)
    batch_size: int = setting(8, "Episodes per device per step; batch size x accumulation must be a multiple of "
                              "--num-generations.", min=1)
    num_generations: int = setting(8, "Episodes per task in a group (advantages compare episodes of one task).",
                                   min=2)
    max_turns: int = setting(20, "Replies (environment steps) per episode at most.", min=1)
    max_new_tokens: int = setting(96, "Tokens per reply at most.", min=1)
    max_completion_length: int = setting(2048, "Tokens of a whole episode after its prompt, environment turns "
                                         "included; an episode whose next turn would not fit ends there.", min=1)
    temperature: float = setting(1.0, "Sampling temperature of the rollouts (the trainer's log-probs use it too).")
    top_p: float = setting(1.0, "Nucleus sampling of the rollouts.")
    warmup_ratio: float = 0.0
    learning_rate: float | None = setting(None, "Learning rate (default: 1e-4 tiny, 2e-5 LoRA, 1e-6 full).",
                                          flag="--lr")
    beta: float = setting(0.0, "KL coefficient against the starting model (0: no reference model is loaded, "
                          "no second copy of the weights; e.g. 0.04 for long runs on a pretrained student).", min=0)
    epsilon: float = setting(0.2, "PPO-style clipping of the probability ratio.", min=0)
    loss_type: str = setting("dapo", "TRL's loss aggregation; `dapo` normalises by the batch's model tokens, so long "
                             "episodes are not down-weighted.")
    invalid_action_penalty: float = setting(0.1, "Reward subtracted per unparseable or inadmissible reply (0: off).",
                                            flag="--invalid-penalty")
    lora: bool = setting(False, _LORA)
    lora_r: int = setting(16, _LORA_R, min=1)
    tiny_size: str = setting("tiny", _TINY_SIZE)
    logging_steps: int = 1
