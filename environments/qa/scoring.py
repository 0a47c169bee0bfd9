"""Answer scoring: SQuAD/HotpotQA exact match and token F1 on normalised answers."""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Any

from agentkd.schema import Task

__all__ = ["exact_match", "f1", "normalize_answer", "score"]

_PUNCTUATION = frozenset(string.punctuation)
_SPECIAL = frozenset({"yes", "no", "noanswer"})  # HotpotQA: these only match themselves


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse whitespace (SQuAD's rule)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(gold)


def f1(prediction: str, gold: str) -> float:
    """Token-level F1 of the normalised answers (yes/no answers score 0 against anything else)."""
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if (pred in _SPECIAL or ref in _SPECIAL) and pred != ref:
        return 0.0
    pred_tokens, ref_tokens = pred.split(), ref.split()
    common = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def score(prediction: Any, task: Task) -> dict[str, float]:
    """``{"em": 0 or 1, "f1": ...}`` of a predicted answer (``None`` = no answer) against the task's gold."""
    gold = task.params.get("answer")
    if gold is None:
        raise ValueError(f"task {task.task_id!r} has no gold answer in its params")
    if prediction is None:
        return {"em": 0.0, "f1": 0.0}
    prediction = str(prediction)
    return {"em": float(exact_match(prediction, str(gold))), "f1": f1(prediction, str(gold))}
