"""HotpotQA-style questions from a user-supplied JSONL (or JSON array) file, as qa tasks.

The corpus comes separately (:func:`agentkd.tools.retrieval.load_corpus` reads HotpotQA paragraph
lines); the expert answers these tasks by searching each supporting title in turn.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentkd.errors import AgentKDError
from agentkd.schema import Task

__all__ = ["QuestionFormatError", "load_hotpot_jsonl"]


class QuestionFormatError(AgentKDError, ValueError):
    """A question line is not a HotpotQA question; names the file and the line (or array item) number."""

    def __init__(self, path: Path, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: not a HotpotQA question: {reason}")
        self.path = path
        self.line = line


def _supporting_titles(value: Any) -> list[str]:
    # HotpotQA's own files hold [[title, sentence index], ...]; the HF dataset {"title": [...], "sent_id": [...]}.
    if value is None:
        return []
    if isinstance(value, dict):
        titles = value.get("title")
    elif isinstance(value, list):
        titles = [item[0] if isinstance(item, (list, tuple)) and item else None for item in value]
    else:
        titles = None
    if not isinstance(titles, list) or not all(isinstance(t, str) for t in titles):
        raise ValueError('"supporting_facts" must be [[title, sentence], ...] or {"title": [...], ...}')
    return list(dict.fromkeys(titles))


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):  # the official distribution is one JSON array
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise QuestionFormatError(path, exc.lineno, str(exc)) from exc
        yield from enumerate(items, start=1)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise QuestionFormatError(path, number, str(exc)) from exc


def _task(record: Any, split_name: str, index: int) -> Task:
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    question_id = record.get("_id", record.get("id"))
    if question_id is None:
        raise ValueError('missing "_id" (or "id")')
    for key in ("question", "answer"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            raise ValueError(f'missing "{key}" (a non-empty string)')
    kind = record.get("type")
    return Task(
        task_id=f"hotpot/{split_name}/{question_id}",
        env="qa",
        split=split_name,
        task_type=f"hotpot_{kind}" if kind else "hotpot",
        goal=record["question"].strip(),
        index=index,
        params={"source": "hotpot", "id": str(question_id), "answer": record["answer"].strip(),
                "supporting": _supporting_titles(record.get("supporting_facts")), "type": kind,
                "level": record.get("level")},
    )


def load_hotpot_jsonl(questions_path: str | Path, split_name: str) -> list[Task]:
    """Tasks from HotpotQA-style records ``{"_id"|"id", "question", "answer", "type", "supporting_facts"...}``.

    ``params`` keep the gold answer, the supporting titles (in order of first mention), type and
    level. A malformed record raises :class:`QuestionFormatError` with the file and line number.
    """
    path = Path(questions_path).expanduser()
    if not path.is_file():
        raise QuestionFormatError(path, None, "no such file")
    tasks = []
    for number, record in _records(path):
        try:
            tasks.append(_task(record, split_name, len(tasks)))
        except ValueError as exc:
            raise QuestionFormatError(path, number, str(exc)) from exc
    return tasks
