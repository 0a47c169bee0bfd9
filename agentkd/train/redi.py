"""Stage 2: REDI — learn from the student's failures as well as the teacher's successes.

REDI (*Harnessing Negative Signals: Reinforcement Distillation from Teacher Data*, 2025) refines an
SFT student on pairs ``(x, y⁺, y⁻)``: a prompt, a continuation that succeeded and one that failed.
The loss is reference-free (no frozen copy of the model, no KL term) and asymmetric::

    L = mean over pairs of [ −log π(y⁺|x) / |y⁺|  +  α · log π(y⁻|x) / |y⁻| ]

Both log-likelihoods are normalised by their token counts, so long and short episodes weigh the
same; ``α`` < 1 (0.8 in the paper) pushes the failed continuation down more gently than the
successful one is pulled up, which keeps the unbounded negative term from taking over.

The pairs come from the experience store (:func:`agentkd.distill.redi_pairs`): *trajectory*
pairs put a failed episode — typically the SFT student's own rollout, recorded with
``agentkd collect --teacher <sft student dir>`` — against a successful episode of the same task;
*step* pairs take a state of a failed episode where the environment's expert acts differently and
wins from there. Only assistant tokens of the continuations count: observations inside a
multi-turn continuation, and anything in the prompt (earlier assistant turns included), are
context, never targets.

:class:`RediTrainer` is a :class:`transformers.Trainer` whose ``compute_loss`` runs chosen and
rejected sequences through the model in one forward pass; :func:`train_redi` is the stage end to
end, from the store to a saved student. (Defining a Trainer subclass imports transformers: import
this module where the stage runs, not at start-up.)
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import Trainer

from agentkd.distill.datasets import redi_pairs
from agentkd.models.student import resolve_student
from agentkd.schema import Task, Trajectory
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
from agentkd.train.compact_head import labelled_logps
from agentkd.train.config import RediRunConfig
from agentkd.train.distributed import shared_start
from agentkd.train.summary import TrainingSummary

if TYPE_CHECKING:  # pragma: no cover
    from agentkd.store import ExperienceStore

__all__ = ["RediCollator", "RediRunConfig", "RediTrainer", "tokenize_pair", "train_redi"]

_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")


# ---- data: pairs to token ids and loss masks -------------------------------------------------------


def _render(tokenizer: Any, messages: list[dict[str, str]], **kwargs: Any) -> dict[str, list[int]]:
    return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)


def _continuation(tokenizer: Any, prompt: list[dict[str, str]], continuation: list[dict[str, str]],
                  prompt_ids: list[int]) -> tuple[list[int], list[int]]:
    """Token ids of ``prompt + continuation`` and a mask of the continuation's assistant tokens."""
    full = _render(tokenizer, [*prompt, *continuation], return_assistant_tokens_mask=True)
    ids, mask = list(full["input_ids"]), list(full["assistant_masks"])
    n_prompt = len(prompt_ids)
    if ids[:n_prompt] != prompt_ids:
        raise TrainConfigError(
            "the chat template renders the prompt differently once a continuation follows it, so the continuation's "
            "tokens cannot be told apart from the prompt's; REDI needs a template whose rendering of a conversation "
            "starts with the rendering of its prefix (ChatML does)")
    mask[:n_prompt] = [0] * n_prompt  # the prompt's own assistant turns are context, not targets
    if not any(mask):
        raise TrainConfigError(f"a REDI continuation has no assistant tokens to train on: "
                               f"{[m['role'] for m in continuation]}")
    return ids, mask


def tokenize_pair(row: dict[str, Any], tokenizer: Any) -> dict[str, list[int]]:
    """Ids and loss masks of one ``{"prompt", "chosen", "rejected"}`` pair.

    The mask selects exactly the assistant tokens of the continuation — what the chat template's
    ``{% generation %}`` markers cover (content and end-of-turn token) — with everything inside
    the prompt's own rendering zeroed.
    """
    template = getattr(tokenizer, "chat_template", None) or ""
    if not _GENERATION_TAG.search(template):
        raise TrainConfigError(
            "the tokenizer's chat template has no {% generation %} markers, so assistant tokens cannot be told from "
            "observations: REDI trains on assistant tokens only. Use a template that wraps assistant content in "
            "{% generation %}...{% endgeneration %} (tiny students have one)")
    prompt_ids = list(_render(tokenizer, row["prompt"])["input_ids"])
    chosen_ids, chosen_mask = _continuation(tokenizer, row["prompt"], row["chosen"], prompt_ids)
    rejected_ids, rejected_mask = _continuation(tokenizer, row["prompt"], row["rejected"], prompt_ids)
    return {"chosen_input_ids": chosen_ids, "chosen_loss_mask": chosen_mask,
            "rejected_input_ids": rejected_ids, "rejected_loss_mask": rejected_mask}


@dataclass
class RediCollator:
    """Batches tokenised pairs: the chosen sequences, then the rejected ones, right-padded to one length.

    The batch has ``input_ids``, ``attention_mask`` and ``loss_mask`` of shape ``(2 * pairs, length)``;
    row ``i`` and row ``i + pairs`` are the two sides of pair ``i``.
    """

    pad_token_id: int

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows = [(f[f"{side}_input_ids"], f[f"{side}_loss_mask"]) for side in ("chosen", "rejected") for f in features]
        length = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        loss_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, (ids, mask) in enumerate(rows):
            input_ids[i, :len(ids)] = torch.as_tensor(ids, dtype=torch.long)
            attention_mask[i, :len(ids)] = 1
            loss_mask[i, :len(ids)] = torch.as_tensor(mask, dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "loss_mask": loss_mask}


# ---- the trainer --------------------------------------------------------------------------------------


class RediTrainer(Trainer):
    """A :class:`~transformers.Trainer` with the REDI loss; give it :func:`tokenize_pair` rows.

    Args:
        alpha: weight of the rejected term (see :class:`RediRunConfig`).
        Everything else as for ``Trainer``; the data collator defaults to :class:`RediCollator`.
    """

    # compute_loss returns a per-batch mean, so Trainer divides it by the accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(self, model: Any = None, args: Any = None, *, alpha: float = 0.8, data_collator: Any = None,
                 processing_class: Any = None, **kwargs: Any):
        if args is not None:
            # The collator needs the chosen_*/rejected_* columns, which the model's forward does not name.
            args.remove_unused_columns = False
        if data_collator is None and processing_class is not None:
            pad = processing_class.pad_token_id
            data_collator = RediCollator(pad if pad is not None else processing_class.eos_token_id)
        super().__init__(model=model, args=args, data_collator=data_collator, processing_class=processing_class,
                         **kwargs)
        self.alpha = alpha
        self._metrics: dict[str, dict[str, list[float]]] = {"train": defaultdict(list), "eval": defaultdict(list)}

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        # the head at the continuation's tokens only (position t predicts token t + 1)
        token_logps = labelled_logps(model, inputs["input_ids"], inputs["attention_mask"], inputs["loss_mask"])
        mask = inputs["loss_mask"][:, 1:].to(token_logps.dtype)
        mean_logps = (token_logps * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)  # log π(y|x) / |y|
        chosen, rejected = mean_logps.chunk(2)
        loss = (-chosen + self.alpha * rejected).mean()

        metrics = self._metrics["train" if model.training else "eval"]
        metrics["logps/chosen"].append(chosen.mean().item())
        metrics["logps/rejected"].append(rejected.mean().item())
        metrics["logps/margin"].append((chosen - rejected).mean().item())
        if return_outputs:
            return loss, {"chosen_logps": chosen.detach(), "rejected_logps": rejected.detach()}
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the averages of the log-probs gathered since the last log."""
        mode = "train" if self.model.training else "eval"
        prefix = "eval_" if mode == "eval" else ""
        logs.update({f"{prefix}{k}": sum(v) / len(v) for k, v in self._metrics[mode].items() if v})
        self._metrics[mode].clear()
        super().log(logs, start_time)


# ---- the stage ----------------------------------------------------------------------------------------


def _step_pair_sources(trajectories: list[Trajectory]) -> tuple[Callable[[str], Any] | None,
                                                                Callable[[Trajectory], Task | None] | None]:
    """``(make_env, load_task)`` for step pairs, or ``(None, None)`` when an environment has no expert."""
    from agentkd.env import has_expert
    from agentkd.envs import load_tasks, make_env

    try:
        if not all(has_expert(make_env(name)) for name in {t.env for t in trajectories}):
            return None, None
    except ValueError:  # an environment agentkd cannot build
        return None, None
    tasks: dict[tuple[str, str], dict[str, Task]] = {}

    def load_task(traj: Trajectory) -> Task | None:
        key = (traj.env, traj.split)
        if key not in tasks:
            try:
                tasks[key] = {task.task_id: task for task in load_tasks(*key)}
            except ValueError:  # a split the environment does not know: no step pairs from it
                tasks[key] = {}
        return tasks[key].get(traj.task_id)

    return make_env, load_task


def train_redi(store: ExperienceStore | None, student: str | Path, out_dir: str | Path,
               config: RediRunConfig | None = None, *,
               allow_download: bool = False, callbacks: list[Any] | None = None) -> TrainingSummary:
    """Refine ``student`` (normally the SFT stage's output directory) with REDI into ``out_dir``.

    Returns the training summary (also written to ``out_dir/training_summary.json``).
    Raises :class:`~agentkd.distill.EmptyDatasetError` when the store has no negatives or no pair
    can be formed; its message says what to collect. Under ``accelerate launch`` only the main
    process reads ``store`` (the others may pass ``None``).

    Example::

        train_redi(store, "runs/sft", "runs/redi", RediRunConfig(alpha=0.8, max_minutes=30))
    """
    from datasets import Dataset
    from transformers import TrainingArguments

    config = config or RediRunConfig()
    started = time.perf_counter()
    spec = str(student)

    def build() -> tuple[Any, Any, Any, tuple[list[dict[str, list[int]]], Any]]:
        """On the main process only: the store read, the student resolved, the pairs built and tokenised."""
        trajectories = load_trajectories(store, env=config.env, split=config.split)
        make_env, load_task = _step_pair_sources(trajectories) if config.step_pairs else (None, None)
        texts = student_texts(trajectories) if spec.startswith("tiny") else ()  # only a fresh tiny student needs them
        model, tokenizer, card = resolve_student(spec, out_dir, texts, allow_download=allow_download, seed=config.seed)
        rows, report = redi_pairs(trajectories, tokenizer, fmt=card.prompt, max_length=config.max_length,
                                  step_pairs=config.step_pairs, trajectory_pairs=config.trajectory_pairs,
                                  make_env=make_env, load_task=load_task,
                                  max_step_pairs_per_episode=config.max_step_pairs_per_episode,
                                  mistake_pairs=config.mistake_pairs)
        if config.step_pairs and make_env is None:
            report.extra["step_pairs_skipped"] = "an environment of these trajectories has no expert"
        return model, tokenizer, card, ([tokenize_pair(row, tokenizer) for row in rows], report)

    model, tokenizer, card, (features, report) = shared_start(build, spec, out_dir, allow_download=allow_download)
    args = trl_config(
        config,         TrainingArguments, out_dir, config.pick_learning_rate(tiny=card.base.startswith("tiny")),
        lr_scheduler_type="cosine", remove_unused_columns=False)
    trainer = RediTrainer(model=model, args=args, train_dataset=Dataset.from_list(features),
                          processing_class=tokenizer, alpha=config.alpha,
                          callbacks=stage_callbacks(config, callbacks))
    output = run_training(trainer, config)
    return finish_run(trainer, output, stage="redi", out_dir=out_dir, card=card, data=report, started=started,
                      tokens=tokens_trained(trainer, report.tokens), config=asdict(config))
