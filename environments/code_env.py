"""Environments whose actions are Python code: multi-hop QA (``qa``) and exact computation (``math``).

The agent writes a block of Python each step; it runs in the episode's own
:class:`~agentkd.tools.CodeSandbox` (one interpreter per episode, so variables persist), with the
task's tools (``search`` for QA) callable from inside and ``final_answer(answer)`` ending the
episode. The observation is what the code printed, the value of its last expression and any error.
The reward is the task's score of the final answer (QA: exact match, with F1 in ``info``; math: 1
when the number is right).

Self-consistency needs to see what a candidate *does* before choosing it: :meth:`CodeEnv.try_action`
runs a candidate in a fork of the episode's sandbox and remembers the fork; when :meth:`CodeEnv.step`
is then called with that candidate, the fork's outcome is adopted instead of running the code again
— only the winner's effects continue in the episode; the losers' forks and the interpreter the
winner was forked from are closed.

Each task package (``environments.qa``, ``environments.math``) supplies ``intro(task)``,
``expert_step(task, observations)``, ``score(answer, task)`` and, for QA, the corpus tools.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from agentkd.schema import Task

__all__ = ["CodeEnv", "StepOutcome", "render_result"]

#: Observations longer than this are cut (a student's context is small; the sandbox caps output too).
MAX_OBSERVATION_CHARS = 1500
NO_CODE = "No code found: reply with 'Thought: ...', then 'Code:' and a ```py block."


@dataclass
class StepOutcome:
    """What one code action did: the environment's ``step`` return values."""

    observation: str
    reward: float
    done: bool
    info: dict[str, Any] = field(default_factory=dict)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 40] + f"\n... [{len(text) - limit + 40} characters cut]"


def render_result(result: Any, limit: int = MAX_OBSERVATION_CHARS) -> str:
    """A sandbox :class:`~agentkd.tools.RunResult` as the agent's observation text."""
    parts = []
    if result.stdout.strip():
        parts.append(result.stdout.rstrip())
    if result.value is not None:
        parts.append(f"Out: {result.value}")
    if result.error:
        parts.append(f"Error: {result.error}")
    if result.answered:
        parts.append(f"Final answer: {result.final_answer}")
    if not parts:
        parts.append("(no output; print() what you want to see)")
    return _cut("\n".join(parts), limit)


class CodeEnv:
    """A code-action environment for the tasks of ``environments.<name>`` (``qa`` or ``math``), or of ``tasks``.

    Args:
        name: the environment (``Task.env``).
        tasks: what supplies ``intro(task)``, ``expert_step(task, observations)``, ``score(answer, task)`` and,
            optionally, ``tools(task)`` (a module or any object; an environment package of its own can pass
            itself). Default: the package ``environments.<name>``.
        timeout_s, memory_mb, isolation: the sandbox's limits and isolation mode (see
            :class:`~agentkd.tools.CodeSandbox`).
        max_steps: accepted for the registry's uniform call; the episode's step cap lives in the agent.
    """

    action_format = "code"

    def __init__(self, name: str, *, tasks: Any = None, timeout_s: float = 10.0, memory_mb: int = 512,
                 isolation: str = "auto", max_steps: int | None = None):
        self.name = name
        self.tasks = tasks if tasks is not None else import_module(f"environments.{name}")
        self.sandbox_options = {"timeout_s": timeout_s, "memory_mb": memory_mb, "isolation": isolation}
        self.task: Task | None = None
        self.sandbox: Any = None
        self.observations: list[str] = []  # what each step showed, for the expert
        self.done = False
        self._tried: dict[str, tuple[Any, StepOutcome]] = {}  # candidate code -> (its fork, what it did)
        # The policy tries candidates in its worker thread while collection may close the episode.
        self._lock = threading.RLock()

    # ---- protocol -------------------------------------------------------------------------------

    def reset(self, task: Task) -> str:
        from agentkd.tools import CodeSandbox

        if task.env != self.name:
            raise ValueError(f"task {task.task_id} belongs to {task.env!r}, not {self.name!r}")
        with self._lock:
            self.close()
            self.task, self.done, self.observations = task, False, []
            tools_for = getattr(self.tasks, "tools", None)
            self.sandbox = CodeSandbox(tools=tools_for(task) if tools_for else None, **self.sandbox_options)
            return self.tasks.intro(task)

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if self.task is None or self.sandbox is None:
            raise RuntimeError("reset(task) before step()")
        if self.done:
            return "The episode is over.", 0.0, True, {"admissible": False}
        with self._lock:
            tried = self._tried.pop(action, None)
            if not action.strip():  # the reply had no code (the policy marked it invalid): say so, run nothing
                outcome = StepOutcome(NO_CODE, 0.0, False, {"admissible": False})
            elif tried is not None:  # a self-consistency candidate ran this in a fork: continue from there
                # Closing the interpreter a fork came from never touches the fork (see CodeSandbox).
                self.sandbox.close()
                self.sandbox, outcome = tried
            else:
                outcome = self._run(self.sandbox, action)
            self._close_tried()  # the other candidates' forks
        self.observations.append(outcome.observation)
        self.done = outcome.done
        return outcome.observation, outcome.reward, outcome.done, outcome.info

    def admissible_actions(self) -> None:
        return None  # any Python code

    def expert_action(self) -> tuple[str, str]:
        if self.task is None:
            raise RuntimeError("reset(task) before expert_action()")
        return self.tasks.expert_step(self.task, list(self.observations))

    # ---- self-consistency -----------------------------------------------------------------------

    def try_action(self, action: str) -> StepOutcome:
        """Run ``action`` in a fork of the current state; the episode is unchanged until ``step(action)``.

        A fork that cannot be made (e.g. the sandbox's process limit) is that candidate's error, not the batch's.
        """
        from agentkd.tools import SandboxError

        with self._lock:
            if self.sandbox is None:
                raise RuntimeError("reset(task) before try_action(), or the episode was closed")
            if action in self._tried:
                return self._tried[action][1]
            try:
                fork = self.sandbox.fork()
            except SandboxError as exc:
                return StepOutcome(f"Error: {exc}", 0.0, False, {"admissible": False, "code_error": str(exc)})
            outcome = self._run(fork, action)
            self._tried[action] = (fork, outcome)
            return outcome

    # ---- internals ------------------------------------------------------------------------------

    def _run(self, sandbox: Any, code: str) -> StepOutcome:
        result = sandbox.run(code)
        info: dict[str, Any] = {"admissible": result.error is None}
        if result.error:
            info["code_error"] = result.error
        if not (result.stdout.strip() or result.value is not None or result.error or result.answered):
            info["silent"] = True  # showed nothing: self-consistency must not count it as agreeing with others
        if not result.answered:
            return StepOutcome(render_result(result), 0.0, False, info)
        assert self.task is not None
        scores = self.tasks.score(result.final_answer, self.task)
        reward = float(scores.get("em", scores.get("correct", 0.0)))
        info.update({"answer": result.final_answer, "won": reward > 0, **scores})
        return StepOutcome(render_result(result), reward, True, info)

    def _close_tried(self) -> None:
        for fork, _ in list(self._tried.values()):
            fork.close()
        self._tried.clear()

    def close(self) -> None:
        """Stop the episode's interpreters (called by collection when an episode ends; reset calls it too)."""
        with self._lock:
            self._close_tried()
            if self.sandbox is not None:
                self.sandbox.close()
            self.sandbox = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to clean
            pass

