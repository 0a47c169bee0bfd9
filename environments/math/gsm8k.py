"""GSM8K-style problems from the user's JSONL file, as math tasks, with an expert that reads the solution.

Each line is ``{"question": ..., "answer": "...#### 72"}`` (GSM8K's own format; an ``"id"`` is kept
when there is one). The number after ``####`` is the gold answer; the text before it is the worked
solution, whose calculator annotations (``<<48/2=24>>``) the expert turns into code::

    step_1 = 48/2
    step_2 = 48+24
    print("Answer:", step_2)

and then answers with the number its code printed. When the annotations do not reach the gold answer
(or there are none), its code states the answer outright. A task's id is ``math/<file stem>/<line>``
(or the record's ``id``), its split the file's stem and its type ``gsm8k``.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

from agentkd.schema import Task
from agentkd.splits import SplitFileError, split_name

from .answers import NUMBER, number_value

__all__ = ["TASK_TYPE", "expert_step", "is_gsm8k", "load_gsm8k"]

TASK_TYPE = "gsm8k"
_MARK = "####"
_CALC = re.compile(r"<<([^<>=]+)=([^<>]*)>>")
_SAFE_EXPR = re.compile(r"[\d\s.+\-*/()%]+")  # numbers and arithmetic only: safe to evaluate
_LABEL = "Answer"


def _gold(answer: str) -> tuple[str, int]:
    """The gold number after ``####`` as plain text ("1000", "-2.5") and its decimal places."""
    if _MARK not in answer:
        raise ValueError(f'"answer" has no "{_MARK} <number>" at its end')
    tail = answer.rsplit(_MARK, 1)[1].strip().replace(",", "").removeprefix("$")
    try:
        value = Decimal(tail)
    except InvalidOperation:
        raise ValueError(f'the text after "{_MARK}" is not a number: {tail!r}') from None
    if not value.is_finite():
        raise ValueError(f'the text after "{_MARK}" is not a finite number: {tail!r}')
    decimals = max(0, -value.as_tuple().exponent) if "." in tail else 0
    return tail, decimals


def _task(record: object, split: str, number: int, index: int) -> Task:
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    for key in ("question", "answer"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            raise ValueError(f'missing "{key}" (a non-empty string)')
    gold, decimals = _gold(record["answer"])
    ident = record.get("id", record.get("_id"))
    return Task(task_id=f"math/{split}/{ident if ident is not None else f'{number:05d}'}", env="math", split=split,
                task_type=TASK_TYPE, goal=record["question"].strip(), index=index,
                params={"source": TASK_TYPE, "answer": gold, "decimals": decimals,
                        "solution": record["answer"].rsplit(_MARK, 1)[0].strip()})


def load_gsm8k(path: Path) -> list[Task]:
    """The tasks of a GSM8K-style JSONL file; a bad line raises :class:`SplitFileError` naming file and line."""
    path = Path(path)
    if path.is_dir():
        raise SplitFileError(path, None, "a folder: the math environment reads one GSM8K-style .jsonl file")
    split = split_name(str(path))
    tasks: list[Task] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SplitFileError(path, None, f"cannot read it ({exc})") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            tasks.append(_task(json.loads(line), split, number, len(tasks)))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            raise SplitFileError(path, number, f"not a GSM8K problem: {exc}") from exc
    if not tasks:
        raise SplitFileError(path, None, "no problems in it (expected JSON lines with \"question\" and \"answer\")")
    return tasks


def is_gsm8k(task: Task) -> bool:
    return task.params.get("source") == TASK_TYPE


def _code(task: Task) -> str:
    """Code that computes the solution's annotated steps and prints the last, or states the gold answer."""
    gold = Decimal(task.params["answer"])
    lines, last = [], None
    for number, (expr, _) in enumerate(_CALC.findall(task.params.get("solution", "")), start=1):
        expr = expr.strip()
        if not _SAFE_EXPR.fullmatch(expr) or "**" in expr:
            continue
        try:
            value = eval(expr, {"__builtins__": {}}, {})  # digits and operators only (checked above)
        except (SyntaxError, ArithmeticError, TypeError):
            continue
        lines.append(f"step_{number} = {expr}")
        last = (f"step_{number}", value)
    if last is not None and abs(Decimal(repr(float(last[1]))) - gold) < Decimal("1e-6"):
        return "\n".join([*lines, f'print("{_LABEL}:", {last[0]})'])
    return f'answer = {task.params["answer"]}\nprint("{_LABEL}:", answer)'


def _printed(observation: str) -> str | None:
    match = re.search(_LABEL + r":\s*" + NUMBER.pattern, observation)
    if match is None or number_value(match) is None:
        return None
    sign = "-" if match["sign"] in ("-", "\u2212") else ""
    return sign + (match["int"] or "0").replace(",", "") + (match["frac"] or "") + (match["exp"] or "")


def expert_step(task: Task, observations: list[str]) -> tuple[str, str]:
    """(thought, code): compute the solution's steps and print the result; then answer with what was printed."""
    literal = _printed(observations[-1]) if observations else None
    if literal is None:
        solution = _CALC.sub("", task.params.get("solution", "")).split("\n")
        plan = " ".join(line.strip() for line in solution if line.strip())
        return f"I will compute it step by step. {plan}".strip(), _code(task)
    return f"The result is {literal}. That is the answer.", f"final_answer({literal})"
