"""The store's training data as files and datasets other tools train on.

- **messages**: one ``{"messages": [...]}`` conversation per episode, exactly the rows agentkd's
  SFT stage trains on (:func:`~agentkd.distill.datasets.sft_conversations`) — TRL's
  conversational format, so ``trl sft --dataset_name json --data_files FILE`` (or ``SFTTrainer``
  on ``load_dataset("json", data_files=FILE)``) trains on it directly.
- **steps**: one row per step — the student's prompt before it and the teacher's reply
  (``prompt`` / ``completion``, TRL's conversational prompt-completion format) with the step's
  episode, index, reward, validity and the episode's outcome.
- :func:`hub_tables` adds the full trajectories (:meth:`~agentkd.store.ExperienceStore.to_dataset`)
  and a dataset card for ``agentkd store push``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agentkd.distill.datasets import DataReport, _prompt_at, assistant_text, is_mistake, sft_conversations
from agentkd.envs import is_code
from agentkd.models.student import PromptFormat
from agentkd.schema import Trajectory

__all__ = ["export_messages", "hub_tables", "step_rows"]


def step_rows(trajectories: Iterable[Trajectory], fmt: PromptFormat | None = None) -> list[dict[str, Any]]:
    """One ``{"prompt", "completion", ...}`` row per step (deliberate mistakes left out: they are never learnt)."""
    fmt = fmt or PromptFormat()
    rows = []
    for traj in trajectories:
        for t, step in enumerate(traj.steps):
            if is_mistake(step):
                continue
            rows.append({
                "prompt": _prompt_at(traj, t, fmt),
                "completion": [{"role": "assistant", "content": assistant_text(step, is_code(traj.env))}],
                "trajectory_id": traj.trajectory_id, "step": step.index, "env": traj.env, "split": traj.split,
                "task_type": traj.task_type, "task_id": traj.task_id, "action": step.action,
                "reward": float(step.reward), "valid": bool(step.valid), "success": bool(traj.success),
            })
    return rows


def export_messages(trajectories: Iterable[Trajectory], path: str | Path, *, steps_path: str | Path | None = None,
                    fmt: PromptFormat | None = None, success_only: bool = True) -> tuple[DataReport, int]:
    """Write the SFT conversations to ``path`` (JSONL) and, when ``steps_path`` is given, the steps table there.

    Returns the SFT builder's report (kept, dropped and why) and the number of step rows written.
    """
    from agentkd.store.transfer import write_jsonl

    trajectories = list(trajectories)
    rows, report = sft_conversations(trajectories, fmt=fmt, success_only=success_only)
    write_jsonl(path, (json.dumps(row, ensure_ascii=False) for row in rows))
    steps = 0
    if steps_path is not None:
        kept = [t for t in trajectories if t.success] if success_only else trajectories
        steps = write_jsonl(steps_path, (json.dumps(row, ensure_ascii=False) for row in step_rows(kept, fmt)))
    return report, steps


def hub_tables(store: Any, repo_id: str, **filters: Any) -> tuple[dict[str, Any], Any]:
    """``({"trajectories", "messages", "steps"} datasets, dataset card)`` for publishing the (filtered) store."""
    from datasets import Dataset

    from agentkd.store.transfer import dataset_card

    trajectories = list(store.iterate(**filters))
    messages, _ = sft_conversations(trajectories)
    successes = [t for t in trajectories if t.success]
    tables = {
        "trajectories": store.to_dataset(**filters),
        # Conversations as JSON-free Arrow rows: `train` flags (deliberate mistakes) become nullable booleans.
        "messages": Dataset.from_list(messages) if messages else Dataset.from_dict({"messages": []}),
        "steps": Dataset.from_list(step_rows(successes)) if successes else Dataset.from_dict({"prompt": []}),
    }
    card = dataset_card(repo_id, store.stats(**filters), {name: len(table) for name, table in tables.items()},
                        source=str(getattr(store, "location", "")))
    return tables, card
