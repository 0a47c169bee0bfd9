"""The agent-distillation paper's **first-thought prefix**.

At an episode's first step the teacher is first asked for a step-by-step plan; the plan's first
paragraph is prefilled into the agent turn as ``"Thought: <paragraph>"`` and the model continues
from there (:class:`~agentkd.policies.chat.ChatModelPolicy` with ``first_thought=True``). The
decision's raw output and thought start with that prefix, and the planning call's tokens count
towards the step. Continuing a prefilled assistant message needs a backend that supports it
(LocalChatModel, Anthropic, vLLM with ``continue_final_message``); a backend that starts a fresh
reply instead still yields a parseable ``prefix + reply`` (:func:`join_prefix`).
"""

from __future__ import annotations

import re

from agentkd.policies.base import PolicyInput

__all__ = ["FIRST_THOUGHT_PROMPT", "first_paragraph", "first_thought_messages", "join_prefix"]

FIRST_THOUGHT_PROMPT = (
    "You will solve a task in a text environment.\n\n"
    "Task: {goal}\n\n"
    "What you see first:\n{observation}\n\n"
    "Think step by step: write a short plan for how to solve this task. Do not act yet."
)
_LEADING_LABEL = re.compile(r"^[\W_]*(?:thought|think|plan)[*_`\s]*:[*_`\s]*", re.IGNORECASE)


def first_thought_messages(inp: PolicyInput) -> list[dict[str, str]]:
    """The plain planning prompt sent to the teacher at an episode's first step."""
    text = FIRST_THOUGHT_PROMPT.format(goal=inp.task.goal.strip(), observation=inp.observation.strip())
    return [{"role": "user", "content": text}]


def first_paragraph(text: str, max_chars: int = 400) -> str:
    """The first paragraph of ``text`` on one line: up to the first blank line, labels and extra spaces removed,
    cut at a word boundary to at most ``max_chars`` characters."""
    paragraph = re.split(r"\n[ \t]*\n", text.strip(), maxsplit=1)[0]
    paragraph = " ".join(_LEADING_LABEL.sub("", paragraph.strip()).split())
    if len(paragraph) > max_chars:
        cut = paragraph[: max_chars + 1].rsplit(" ", 1)[0]
        paragraph = (cut if cut and len(cut) <= max_chars else paragraph[:max_chars]).rstrip()
    return paragraph


def join_prefix(prefix: str, continuation: str) -> str:
    # A true continuation is appended as is; a reply that starts over with its own label goes on a new line.
    stripped = continuation.lstrip()
    if re.match(r"[*_`#>\s-]*(?:thought|think|action|act)\b", stripped, re.IGNORECASE):
        return f"{prefix}\n{stripped}"
    return prefix + continuation
