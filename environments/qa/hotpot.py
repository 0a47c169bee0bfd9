"""HotpotQA-style questions from a user-supplied JSONL (or JSON array) file, as qa tasks.

The expert answers these tasks by searching each supporting title in turn. As a split
(``--split PATH``, :func:`load_hotpot_split`), the questions come with the corpus their episodes search:

* a question file (``.json`` array or ``.jsonl``) whose records carry HotpotQA's ``context``
  paragraphs (the distractor setting's files do): the corpus is every paragraph of the file;
* a folder holding one question file (``questions.jsonl`` or ``questions.json``, or the only
  other ``.json``/``.jsonl``) and a corpus, ``corpus.jsonl`` or a ``corpus/`` folder of ``.txt``/``.md``
  files (see :func:`agentkd.tools.retrieval.load_corpus`); context paragraphs are added to it.

The split is named after the file's stem or the folder's name; each task's ``params["corpus"]`` holds
the path it came from, and :func:`environments.qa.corpus.tools` searches that corpus in its episodes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentkd.schema import Task
from agentkd.splits import SplitFileError, split_name
from agentkd.tools.retrieval import Document, document_from_json, load_corpus

__all__ = ["QuestionFormatError", "load_hotpot_jsonl", "load_hotpot_split", "split_documents"]

_QUESTION_FILES = ("questions.jsonl", "questions.json")
_CORPUS_NAMES = ("corpus.jsonl", "corpus")


class QuestionFormatError(SplitFileError):
    """A question line is not a HotpotQA question; names the file and the line (or array item) number."""

    def __init__(self, path: Path, line: int | None, reason: str) -> None:
        super().__init__(path, line, f"not a HotpotQA question: {reason}")


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


def _split_files(path: Path) -> tuple[Path, Path | None]:
    """(the question file, the corpus file or folder or None) of a split path."""
    if path.is_file():
        return path, None
    questions = [path / name for name in _QUESTION_FILES if (path / name).is_file()]
    if not questions:
        questions = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".json", ".jsonl")
                           and not p.name.startswith("corpus"))
    if len(questions) != 1:
        found = ", ".join(p.name for p in questions) or "none"
        raise SplitFileError(path, None, "expected one question file (questions.jsonl, or a single .json/.jsonl "
                                         f"besides the corpus), found {found}")
    corpus = next((path / name for name in _CORPUS_NAMES if (path / name).exists()), None)
    return questions[0], corpus


def _context_documents(path: Path) -> list[Document]:
    """The ``context`` paragraphs of a question file (HotpotQA's pairs, or the HF dataset's columns)."""
    documents = []
    for number, record in _records(path):
        context = record.get("context") if isinstance(record, dict) else None
        if context is None:
            continue
        if isinstance(context, dict):  # {"title": [...], "sentences": [[...], ...]}
            context = list(zip(context.get("title") or [], context.get("sentences") or [], strict=False))
        try:
            if not isinstance(context, list):
                raise ValueError("must be a list of [title, sentences] pairs")
            documents += [document_from_json(list(pair) if isinstance(pair, tuple) else pair) for pair in context]
        except ValueError as exc:
            raise QuestionFormatError(path, number, f'"context": {exc}') from exc
    return documents


def split_documents(source: str | Path) -> list[Document]:
    """The corpus of a split path (see the module docstring): its corpus, then its context paragraphs; ids unique."""
    questions, corpus = _split_files(Path(source))
    documents = (load_corpus(corpus) if corpus is not None else []) + _context_documents(questions)
    unique: dict[str, Document] = {}
    for document in documents:
        unique.setdefault(document.id, document)
    return list(unique.values())


def load_hotpot_split(path: Path) -> list[Task]:
    """The tasks of a HotpotQA split path, each pointing at the split's corpus (``params["corpus"]``)."""
    path = Path(path)
    questions, corpus = _split_files(path)
    tasks = load_hotpot_jsonl(questions, split_name(str(path)))
    if not tasks:
        raise SplitFileError(questions, None, "no questions in it")
    if corpus is None and not _context_documents(questions):
        raise SplitFileError(path, None, 'no corpus to search: its questions carry no "context" paragraphs; put the '
                                         "question file in a folder with a corpus.jsonl (or a corpus/ folder)")
    source = str(path.resolve())
    return [task.model_copy(update={"params": {**task.params, "corpus": source}}) for task in tasks]
