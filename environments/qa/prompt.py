"""The first observation of a QA episode: the question and how the tools work."""

from __future__ import annotations

from agentkd.schema import Task

__all__ = ["TOOLS_DESCRIPTION", "intro"]

TOOLS_DESCRIPTION = (
    "You answer by writing Python code, one step at a time; after each step you see what your code printed. "
    'Two functions are available. search(query, k=3) returns the top k documents of the knowledge base as text, '
    'one "[i] Title: text" line per document; search for one name or a few keywords at a time. '
    "final_answer(answer) submits your answer and ends the episode. Only what you print is shown to you, so "
    "print the results you want to read. The facts are in the documents, not in your memory: look up every "
    "entity you need, and answer with the exact name, place or year."
)


def intro(task: Task) -> str:
    """What the agent sees first: the question, then the tools."""
    return f"Question: {task.goal}\n\n{TOOLS_DESCRIPTION}"
