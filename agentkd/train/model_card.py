"""The ``README.md`` model card of a student directory, from its student card and training summary.

A student directory is an ordinary Hugging Face model directory; its ``README.md`` (a
``huggingface_hub.ModelCard``) tells a reader of the Hub, or of the folder, what it is: the base
model, every training stage with its data and steps (from ``agentkd_student.json``), the data
counts of the latest stage (from ``training_summary.json``), the prompt format replay uses, how to
load it — and an evaluation table when :func:`model_card` is given one. (``agentkd eval`` writes its
report into its own output folder, not into the student directory, so training writes the
training facts only.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentkd.models.student import CARD_FILE, StudentCard

__all__ = ["MODEL_CARD_FILE", "SUMMARY_FILE", "model_card", "write_model_card"]

MODEL_CARD_FILE = "README.md"
SUMMARY_FILE = "training_summary.json"  # what finish_run writes (agentkd.train.common re-exports it)


def _hub_name(base: str) -> str | None:
    """``base`` when it reads as a Hugging Face model id (``org/name``), else None (a path, ``tiny:...``)."""
    parts = base.split("/")
    if len(parts) == 2 and all(parts) and ":" not in base and not base.startswith((".", "~")):
        return base
    return None


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("|", "\\|")

    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)]


def model_card(card: StudentCard, summary: dict[str, Any] | None = None,
               evaluation: list[dict[str, Any]] | None = None, *, name: str = "student") -> Any:
    """The ``huggingface_hub.ModelCard`` of a student: its card's facts, the latest summary and, when given,
    evaluation rows (``{"config", "split", "episodes", "success_rate", ...}``)."""
    from huggingface_hub import ModelCard, ModelCardData

    base_model = _hub_name(card.base)
    data = ModelCardData(library_name="transformers", pipeline_tag="text-generation", base_model=base_model,
                         tags=["agentkd", "agent-distillation", *(s["stage"] for s in card.stages)])
    stages = " → ".join(s["stage"] for s in card.stages) or "none yet"
    lines = [
        f"# {name}",
        "",
        f"A tool-using agent student distilled with agentkd from teacher trajectories. "
        f"Base model: `{card.base}`" + (" (randomly initialised, for tests)" if card.base.startswith("tiny") else "")
        + f". Stages: {stages}.",
        "",
        "## Training",
        "",
        *_table(["#", "stage", "examples", "steps", "tokens", "train loss"],
                [[i + 1, s.get("stage"), s.get("data", "-"), s.get("steps", "-"), s.get("tokens", "-"),
                  s.get("train_loss", "-")] for i, s in enumerate(card.stages)]),
    ]
    if summary:
        counts = summary.get("data", {})
        dropped = ", ".join(f"{k} {v}" for k, v in counts.get("dropped", {}).items()) or "none"
        lines += ["", f"Latest stage ({summary.get('stage')}): {counts.get('kept')} examples kept of "
                  f"{counts.get('considered')} considered, {counts.get('truncated', 0)} truncated, dropped: {dropped}; "
                  f"{summary.get('steps')} optimizer steps on {summary.get('processes', 1)} process(es), global batch "
                  f"{summary.get('global_batch', '-')}, {summary.get('tokens')} tokens in "
                  f"{summary.get('train_seconds')} s ({summary.get('tokens_per_second')} tokens/s, "
                  f"{summary.get('device')})."]
    if evaluation:
        keys = [k for k in ("config", "split", "episodes", "success_rate", "mean_steps", "deferred") if
                any(k in row for row in evaluation)]
        lines += ["", "## Evaluation", "", *_table(keys, [[row.get(k, "-") for k in keys] for row in evaluation])]
    lines += [
        "",
        "## Use",
        "",
        f"The prompt format it was trained with (replay uses the same): `{card.prompt.model_dump_json()}`; "
        f"the full lineage is in `{CARD_FILE}`.",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        'model = AutoModelForCausalLM.from_pretrained("PATH_OR_REPO")',
        'tokenizer = AutoTokenizer.from_pretrained("PATH_OR_REPO")',
        "```",
        "",
        "or with agentkd: `agentkd eval --student PATH_OR_REPO ...`.",
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")


def write_model_card(directory: str | Path) -> Path:
    """Write ``README.md`` into a student directory from the files it holds; returns its path."""
    directory = Path(directory)
    card = StudentCard.load(directory)
    if card is None:
        raise FileNotFoundError(f"{directory} has no {CARD_FILE}: it is not an agentkd student")
    summary_path = directory / SUMMARY_FILE
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else None
    path = directory / MODEL_CARD_FILE
    model_card(card, summary, name=directory.name).save(path)
    return path
