"""The scripted code-agent expert, the agent's first observation, and an offline runner for the expert.

The expert acts like the code agent of the agent-distillation paper, in two steps:

1. a short plan naming the quantities, and code that assigns the question's numbers to named
   variables, computes the answer and prints it with a label ("Full boxes: 8918");
2. a thought that reads the printed value back ("The result is 8,918.") and ``final_answer(8918)``
   with that literal number.

The expert reads its own observation rather than the gold answer, so its second step is only
right when the first step's code ran and printed what it should.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import re
from typing import Any, NamedTuple

from agentkd.errors import AgentKDError
from agentkd.schema import Task

from . import gsm8k
from .answers import NUMBER, number_value
from .templates import Numbers, Template, get_template

ACTING_NOTE = (
    "Act by writing Python code (standard library only); it runs in a sandbox, and variables persist between "
    "steps. Whatever you `print` is shown to you as the next observation, so print the values you need to see. "
    "When you know the answer, call `final_answer(value)` with the number; that ends the episode."
)


class ExpertError(AgentKDError, ValueError):
    """The expert cannot take its next step (for example, the observation lacks the printed result)."""


def _problem(task: Task) -> tuple[Template, Numbers]:
    try:
        return get_template(task.params["template"]), task.params["numbers"]
    except KeyError as exc:
        raise ExpertError(f"task {task.task_id!r} is not a generated math task: missing {exc}") from exc


def intro(task: Task) -> str:
    """The first observation: the problem and how to act on it."""
    return f"Problem: {task.goal}\n\n{ACTING_NOTE}"


def read_result(task: Task, observation: str) -> str:
    """The number the expert's code printed after its label, as Python literal text ("8918", "1234.50")."""
    template, _ = _problem(task)
    match = re.search(re.escape(template.label) + r":\s*" + NUMBER.pattern, observation)
    if match is None or number_value(match) is None:
        shown = observation if len(observation) <= 300 else observation[:300] + " …"
        raise ExpertError(
            f"task {task.task_id!r}: expected the observation to contain '{template.label}: <number>' printed by "
            f"the expert's code, but it was {shown!r}"
        )
    sign = "-" if match["sign"] in ("-", "\u2212") else ""
    return sign + (match["int"] or "0").replace(",", "") + (match["frac"] or "") + (match["exp"] or "")


def _with_commas(literal: str) -> str:
    if "e" in literal.lower():
        return literal
    whole, dot, frac = literal.partition(".")
    return f"{int(whole):,}{dot}{frac}"


def expert_step(task: Task, observations: list[str]) -> tuple[str, str]:
    """(thought, python_code) for the next step, given what each earlier step's code printed.

    Step one computes and prints; step two answers with the number read from step one's output.
    When the last observation does not hold that number — the expert takes over from a student
    (cascade, REDI) whose code printed something else — it computes again from the start.
    """
    if gsm8k.is_gsm8k(task):
        return gsm8k.expert_step(task, observations)
    template, numbers = _problem(task)
    try:
        literal = read_result(task, observations[-1]) if observations else None
    except ExpertError:
        literal = None
    if literal is None:
        return template.render_plan(numbers), template.render_code(numbers)
    return f"The result is {_with_commas(literal)}. That is the answer.", f"final_answer({literal})"


# ---- offline runner (tests and validation only) -------------------------------------------------


class ExpertStep(NamedTuple):
    thought: str
    code: str
    observation: str  # what the code printed


class _FinalAnswer(BaseException):
    # BaseException, so that an `except Exception` in the executed code cannot swallow it.
    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.value = value


def _final_answer(value: Any) -> None:
    raise _FinalAnswer(value)


def run_expert_offline(task: Task, max_steps: int = 4) -> tuple[Any, list[ExpertStep]]:
    """Play the expert on `task` with plain ``exec``; return (the value given to final_answer, the steps).

    NOT a sandbox: the code runs in this process with full builtins. It is meant for the expert's
    own, known code in tests and validation; agent code belongs in the sandboxed code environment.
    Globals persist across the steps of one episode and start fresh for each episode.
    """
    namespace: dict[str, Any] = {"__builtins__": builtins, "__name__": "__agent__", "final_answer": _final_answer}
    steps: list[ExpertStep] = []
    for _ in range(max_steps):
        thought, code = expert_step(task, [step.observation for step in steps])
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, f"<{task.task_id} step {len(steps)}>", "exec"), namespace)
        except _FinalAnswer as done:
            steps.append(ExpertStep(thought, code, out.getvalue()))
            return done.value, steps
        except Exception as exc:
            raise RuntimeError(f"expert code failed on task {task.task_id!r} at step {len(steps)}:\n{code}") from exc
        steps.append(ExpertStep(thought, code, out.getvalue()))
    raise RuntimeError(f"expert gave no final answer on task {task.task_id!r} within {max_steps} steps")
