"""Principles from a language model: any LangChain chat model reads an episode and writes lessons.

A successful episode yields *guiding* principles (what made it work), a failed one *cautionary*
principles (what to avoid). The model answers with structured output (:class:`ExtractedPrinciples`,
through ``with_structured_output``); a chat model without tool calling is asked for the same JSON
in its text instead. :func:`model_judge` turns a chat model into the optional second opinion of
deduplication ("are these the same lesson?").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from agentkd.schema import Principle, Trajectory

from .lifecycle import Judge

__all__ = ["ExtractedPrinciple", "ExtractedPrinciples", "ExtractionReport", "SameLesson", "chat_model_name",
           "extract_principles", "extraction_messages", "model_judge", "render_episode", "resolve_chat_model"]

_OBS_CHARS = 240  # of each observation in a rendered episode
_HEAD_STEPS, _TAIL_STEPS = 8, 16  # a long episode shows its start and its end (where failures show)

SYSTEM = (
    "You distil lessons from the episodes of an AI agent acting in the '{env}' environment. A principle is one "
    "short, general, actionable sentence that would help the agent on other tasks of the same kind. Do not "
    "mention this episode's numbered objects or places (say 'a cabinet', not 'cabinet 3'); do not restate the "
    "task. Prefer fewer, better principles; return none if there is no lesson."
)
GUIDING = (
    "The agent SUCCEEDED at the task below in {steps} steps. Write at most {n} guiding principles: what it did "
    "that made it succeed and that carries over to other '{task_type}' tasks."
)
CAUTIONARY = (
    "The agent FAILED at the task below after {steps} steps. Find its mistakes (actions with no effect, loops, "
    "a wrong order, looking in the wrong places, giving up) and write at most {n} cautionary principles that "
    "would have avoided them."
)
JSON_INSTRUCTIONS = (
    "Answer with JSON only, in this form: {\"principles\": [{\"text\": \"...\", \"applies_to_task_type\": true}]}"
)
JUDGE = (
    "Do these two principles for an AI agent state the same lesson (one could replace the other)?\n"
    "A: {a}\nB: {b}"
)


class ExtractedPrinciple(BaseModel):
    """One principle as the model writes it."""

    text: str = Field(description="The principle: one short imperative sentence, general enough for other tasks.")
    applies_to_task_type: bool = Field(
        default=True,
        description="True if the lesson is specific to this kind of task; false if it holds for every task here.")


class ExtractedPrinciples(BaseModel):
    """The principles the model found in one episode (possibly none)."""

    principles: list[ExtractedPrinciple] = Field(default_factory=list, description="The principles, best first.")


class SameLesson(BaseModel):
    """A judge's verdict on two principles."""

    same: bool = Field(description="True if both principles state the same lesson.")
    reason: str = Field(default="", description="One short sentence why.")


@dataclass
class ExtractionReport:
    """Principles extracted, and the episodes the model could not be read for (with the error)."""

    principles: list[Principle] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _cut(text: str, limit: int = _OBS_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_episode(traj: Trajectory) -> str:
    """The episode as the model reads it: the task, then each action with what it led to."""
    lines = [f"Task: {traj.goal.strip()}", f"Task type: {traj.task_type}"]
    if traj.steps:
        lines.append(f"First observation: {_cut(traj.steps[0].observation, 2 * _OBS_CHARS)}")
    steps = list(enumerate(traj.steps, start=1))
    if len(steps) > _HEAD_STEPS + _TAIL_STEPS:
        skipped = len(steps) - _HEAD_STEPS - _TAIL_STEPS
        steps = [*steps[:_HEAD_STEPS], (None, None), *steps[-_TAIL_STEPS:]]
    else:
        skipped = 0
    for number, step in steps:
        if step is None:
            lines.append(f"... ({skipped} steps not shown) ...")
            continue
        lines.append(f"{number}. Action: {_cut(step.action, 400)}")
        lines.append(f"   Result: {_cut(step.next_observation)}")
    lines.append(f"Outcome: {'success' if traj.success else 'failure'}")
    return "\n".join(lines)


def extraction_messages(traj: Trajectory, per_episode: int = 2, json_output: bool = False) -> list[Any]:
    """The chat messages that ask for one episode's principles (guiding if it succeeded, else cautionary)."""
    from langchain_core.messages import HumanMessage, SystemMessage

    ask = (GUIDING if traj.success else CAUTIONARY).format(steps=traj.num_steps, n=per_episode,
                                                           task_type=traj.task_type)
    human = f"{ask}\n\n{render_episode(traj)}"
    if json_output:
        human += "\n\n" + JSON_INSTRUCTIONS
    return [SystemMessage(SYSTEM.format(env=traj.env)), HumanMessage(human)]


def _structured(model: Any, schema: type[BaseModel]) -> tuple[Any, bool]:
    """(runnable returning ``schema``, whether the prompt must ask for JSON): tool calling where the model
    has it, else JSON parsed from the text."""
    try:
        return model.with_structured_output(schema), False
    except NotImplementedError:
        from langchain_core.output_parsers import PydanticOutputParser

        return model | PydanticOutputParser(pydantic_object=schema), True


def chat_model_name(model: Any) -> str:
    for attribute in ("model_name", "model", "model_id"):
        name = getattr(model, attribute, None)
        if isinstance(name, str) and name:
            return name
    return type(model).__name__


def extract_principles(model: Any, trajectories: Iterable[Trajectory], *, per_episode: int = 2,
                       max_concurrency: int = 4) -> ExtractionReport:
    """Ask ``model`` (a LangChain chat model) for principles from each episode, in parallel batches."""
    trajs = list(trajectories)
    report = ExtractionReport()
    if not trajs:
        return report
    runner, json_output = _structured(model, ExtractedPrinciples)
    prompts = [extraction_messages(t, per_episode, json_output) for t in trajs]
    answers = runner.batch(prompts, config={"max_concurrency": max_concurrency}, return_exceptions=True)
    name = chat_model_name(model)
    for traj, answer in zip(trajs, answers, strict=True):
        if isinstance(answer, Exception) or not isinstance(answer, ExtractedPrinciples):
            report.failed.append((traj.trajectory_id, f"{type(answer).__name__}: {answer}"))
            continue
        kind = "guiding" if traj.success else "cautionary"
        for item in answer.principles[:per_episode]:
            text = " ".join(item.text.split())
            if text:
                report.principles.append(Principle.new(
                    text, kind, traj.env, traj.task_type if item.applies_to_task_type else None,
                    [traj.trajectory_id], note=f"extracted by {name}"))
    return report


def model_judge(model: Any) -> Judge:
    """A deduplication judge asking ``model`` whether two near-duplicate principles are the same lesson."""
    from langchain_core.messages import HumanMessage

    runner, json_output = _structured(model, SameLesson)

    def judge(stored: Principle, candidate: Principle) -> bool:
        ask = JUDGE.format(a=stored.text, b=candidate.text)
        if json_output:
            ask += '\n\nAnswer with JSON only: {"same": true or false, "reason": "..."}'
        return bool(runner.invoke([HumanMessage(ask)]).same)

    return judge


def resolve_chat_model(spec: str, *, temperature: float = 0.0) -> Any:
    """A LangChain chat model from ``provider:model`` (:func:`agentkd.policies.chat.init_chat`)."""
    from agentkd.policies.chat import init_chat

    return init_chat(spec, temperature=temperature)
