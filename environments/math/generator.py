"""Math tasks, deterministic by split name, with seen and held-out templates.

``train`` and ``valid_seen`` draw from the same templates (different numbers); ``valid_unseen``
draws only from the held-out templates, which never occur in the other two splits:

* arithmetic: ``sum_multiples``, ``digit_sum_power``
* word_problem: ``prize_sharing``, ``pipes_fill``, ``orchard_leftover``
* sequence: ``two_term_recurrence``, ``sum_of_squares``

Within a split, each task type cycles through its templates, so they are evenly represented.
A task's params hold the template name, its numbers and the gold answer, so
:func:`build_task` rebuilds it exactly.
"""

from __future__ import annotations

import random
from fractions import Fraction
from functools import cache

from agentkd.schema import Task

from .answers import round_exact
from .templates import HELD_OUT, TASK_TYPES, TEMPLATES, Numbers, get_template

# Tasks per task type in each split.
SPLIT_COUNTS = {
    "train": {"arithmetic": 160, "word_problem": 160, "sequence": 80},
    "valid_seen": {"arithmetic": 24, "word_problem": 24, "sequence": 12},
    "valid_unseen": {"arithmetic": 24, "word_problem": 24, "sequence": 12},
}
SPLIT_SIZES = {name: sum(counts.values()) for name, counts in SPLIT_COUNTS.items()}
_MAX_ATTEMPTS = 50
# A rounded answer whose exact value lies this close to a rounding tie (in units of the last
# place) is redrawn: float code could round it the other way, and the tolerance would not cover it.
_TIE_MARGIN = Fraction(1, 100)


def templates_for(split: str, task_type: str) -> list[str]:
    """Names of the templates a split draws from for one task type."""
    held_out = split == "valid_unseen"
    return [name for name, t in TEMPLATES.items() if t.task_type == task_type and (name in HELD_OUT) == held_out]


def _near_tie(value: Fraction, decimals: int) -> bool:
    if decimals == 0:
        return False
    scaled = abs(value) * 10**decimals
    return abs(scaled - int(scaled) - Fraction(1, 2)) < _TIE_MARGIN


def build_task(split: str, index: int, template: str, numbers: Numbers) -> Task:
    """The task of `template` with these numbers: its question, gold answer and id."""
    t = get_template(template)
    value = t.solve(numbers)
    if t.decimals == 0 and value.denominator != 1:
        raise ValueError(f"template {template!r} gave a non-integer answer {value} for {numbers}")
    return Task(
        task_id=f"math/{split}/{index:04d}",
        env="math",
        split=split,
        task_type=t.task_type,
        goal=t.render_question(numbers),
        index=index,
        params={"template": template, "numbers": dict(numbers), "answer": round_exact(value, t.decimals),
                "decimals": t.decimals},
    )


def make_task(split: str, index: int, template: str) -> Task:
    """Draw task `index` of `split` from `template`, redrawing numbers whose rounding would be ambiguous."""
    t = get_template(template)
    for attempt in range(_MAX_ATTEMPTS):
        numbers = t.draw(random.Random(f"math/{split}/{index}/{attempt}"))
        if not _near_tie(t.solve(numbers), t.decimals):
            return build_task(split, index, template, numbers)
    raise RuntimeError(f"no unambiguous draw after {_MAX_ATTEMPTS} attempts for {split}/{index} ({template})")


@cache
def build_split(name: str) -> tuple[Task, ...]:
    """The tasks of the named split ``name`` (always the same; use :func:`environments.math.load_split`)."""
    plan = []
    for task_type in TASK_TYPES:
        names = templates_for(name, task_type)
        plan += [names[i % len(names)] for i in range(SPLIT_COUNTS[name][task_type])]
    random.Random(f"math/split/{name}").shuffle(plan)
    return tuple(make_task(name, i, template) for i, template in enumerate(plan))
