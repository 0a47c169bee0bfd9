"""Reading numbers out of answers and checking them against the gold answer of a task.

Comparison is done on :class:`~decimal.Decimal`, never on floats, so that 20-digit integers compare
exactly. A task stores its gold answer as a string in ``params["answer"]`` and the number of decimal
places the question asked for in ``params["decimals"]`` (0 for an integer answer).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from agentkd.schema import Task

# One number as people and programs write it: optional sign and dollar sign, thousands separators
# ("1,234,567") or plain digits, optional decimals and exponent. The look-arounds keep it from
# starting inside a word ("x2") or ending in the middle of digit groups.
NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-+\u2212])?\$?(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)?(?P<frac>\.\d+)?"
    r"(?P<exp>[eE][-+]?\d+)?"
)


def number_value(match: re.Match[str]) -> Decimal | None:
    if not (match["int"] or match["frac"]):
        return None
    text = (match["int"] or "0").replace(",", "") + (match["frac"] or "") + (match["exp"] or "")
    value = Decimal(text)
    # copy_negate, not unary minus: the latter rounds to the context's 28 digits
    return value.copy_negate() if match["sign"] in ("-", "\u2212") else value


def find_numbers(text: str) -> list[tuple[re.Match[str], Decimal]]:
    """Every number in `text`, in order, with the match it came from."""
    found = []
    for match in NUMBER.finditer(text):
        value = number_value(match)
        if value is not None:
            found.append((match, value))
    return found


def to_decimal(value: Any) -> Decimal | None:
    """The number a prediction stands for, exactly; None for garbage, None, bools and non-finite values.

    Text yields its *last* number, the usual convention for "…, so the answer is 42." answers.
    """
    if value is None or isinstance(value, bool):  # True is an int, but never a meant answer
        return None
    try:
        if isinstance(value, int | Decimal):
            result = Decimal(value)
        elif isinstance(value, float):
            result = Decimal(repr(value))  # the float's shortest text, as the program printed it
        elif isinstance(value, Fraction):
            result = Decimal(value.numerator) / Decimal(value.denominator)
        elif isinstance(value, str):
            found = find_numbers(value)
            if not found:
                return None
            result = found[-1][1]
        else:
            return None
    except (InvalidOperation, ValueError, OverflowError):
        return None
    return result if result.is_finite() else None


_MAX_INT_DIGITS = 4000  # "1e999999999" stays a float (inf) instead of building a billion-digit int


def parse_number(text: Any) -> int | float | None:
    """The number in an answer: int when its value is whole ("1234.0" → 1234, "1.2e6" → 1200000), else float.

    Accepts "1,234", "$1,234.50", "-7", "1.2e6", a bare int or float, and short sentences such as
    "The answer is 42." (the last number wins). Returns None when there is no number.
    """
    value = to_decimal(text)
    if value is None:
        return None
    if value == value.to_integral_value() and value.adjusted() < _MAX_INT_DIGITS:
        return int(value)
    return float(value)


def round_exact(value: Fraction, decimals: int) -> str:
    """`value` rounded half away from zero to `decimals` places, as text ("1234", "1234.50")."""
    scaled = abs(value) * 10**decimals
    digits = int(scaled + Fraction(1, 2))  # floor(x + 1/2) for x >= 0
    sign = "-" if value < 0 and digits else ""
    if decimals == 0:
        return f"{sign}{digits}"
    whole, part = divmod(digits, 10**decimals)
    return f"{sign}{whole}.{part:0{decimals}d}"


def tolerance(decimals: int) -> Decimal:
    """Half of the last decimal place the question asked for; 0 for integer answers."""
    return Decimal(5).scaleb(-(decimals + 1)) if decimals > 0 else Decimal(0)


def check_answer(prediction: Any, task: Task) -> bool:
    """Whether `prediction` (text or number) is the task's answer.

    Integer answers must match exactly (1234.0 counts as 1234); decimal answers may be off by at
    most half of the last decimal place the question asked for.
    """
    predicted = to_decimal(prediction)
    if predicted is None:
        return False
    try:
        gold, decimals = Decimal(task.params["answer"]), int(task.params["decimals"])
    except (KeyError, InvalidOperation, TypeError, ValueError) as exc:
        raise ValueError(f"task {task.task_id!r} has no usable gold answer in params: {exc}") from exc
    if decimals == 0:
        return predicted == gold  # exact at any length; arithmetic would round to 28 digits
    return abs(predicted - gold) <= tolerance(decimals)


def score(prediction: Any, task: Task) -> dict[str, Any]:
    """`correct` (bool) and `em` (1.0 or 0.0, so that it averages into an accuracy)."""
    correct = check_answer(prediction, task)
    return {"correct": correct, "em": float(correct)}
