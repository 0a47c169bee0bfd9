"""Math problems that need exact computation, generated offline, for code-acting agents.

    from environments.math import load_split, intro, expert_step, score
    task = load_split("valid_unseen")[3]
    print(intro(task))                      # the problem and how to act
    thought, code = expert_step(task, [])   # the expert's first step: compute and print
    score("The answer is 8,918.", task)     # {"correct": ..., "em": ...}

Task types: ``arithmetic``, ``word_problem``, ``sequence``. ``valid_unseen`` uses only templates
held out of ``train`` and ``valid_seen`` (see :mod:`environments.math.generator`).
"""

from .answers import check_answer, parse_number, score
from .expert import ExpertError, ExpertStep, expert_step, intro, run_expert_offline
from .generator import SPLIT_SIZES, build_task
from .gsm8k import load_gsm8k
from .splits import get_task, load_split
from .templates import HELD_OUT, TASK_TYPES, TEMPLATES

__all__ = [
    "HELD_OUT", "SPLIT_SIZES", "TASK_TYPES", "TEMPLATES", "ExpertError", "ExpertStep", "build_task", "check_answer",
    "expert_step", "get_task", "intro", "load_gsm8k", "load_split", "parse_number", "run_expert_offline", "score",
]
