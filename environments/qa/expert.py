"""The QA expert: a careful ReAct agent that writes one small Python step at a time.

It knows the answer path by privilege (the hops of :func:`~environments.qa.generator.question_for_task`)
but acts only on what it has read: a hop counts as done once the search results it has seen show the
hop's document stating the fact, and it only searches for names that appear in the question or in
those results. When a search misses, it retries with a more specific query and more documents.
Each step is ``(thought, code)``: a one- or two-sentence thought, and code such as
``print(search("Zorvex Labs"))`` or ``final_answer("Velmora")``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from typing import Any, NamedTuple

from agentkd.schema import Task
from agentkd.tools.retrieval import CorpusIndex, format_hits

from .generator import MAX_STEPS, Hop, Question, question_for_task

__all__ = ["GIVE_UP_ANSWER", "OfflineStep", "expert_step", "run_expert_offline"]

#: What the expert answers when four searches in a row found nothing new (a broken task or index).
GIVE_UP_ANSWER = "unknown"
# (query suffix, k) per failed attempt at a hop: the name, the name with keywords, then more documents.
_ATTEMPTS = ((False, 3), (True, 3), (False, 5), (True, 8))

# relation -> (what is needed, how the found fact is said, keywords for a second query)
_PHRASES = {
    "founder": ("who founded {q}", "{q} was founded by {f}", "founded by"),
    "founding year": ("when {q} was founded", "{q} was founded in {f}", "founded in year"),
    "birthplace": ("where {q} was born", "{q} was born in {f}", "born in city"),
    "birth year": ("when {q} was born", "{q} was born in {f}", "born in year"),
    "author": ("who wrote {q}", "{q} was written by {f}", "written by author"),
    "publication year": ("when {q} was published", "{q} was published in {f}", "published in year"),
    "capital": ("the capital of {q}", "the capital of {q} is {f}", "capital city"),
    "band city": ("where {q} was formed", "{q} was formed in {f}", "band formed in city"),
    "headquarters": ("where {q} is headquartered", "{q} is headquartered in {f}", "headquarters"),
    "country": ("which country {q} is in", "{q} is in {f}", "city in country"),
    "lead singer": ("who the lead singer of {q} is", "the lead singer of {q} is {f}", "lead singer"),
    "document": ("the entry on {q}", "I found the entry on {q}", ""),
}


def _literal(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a valid Python string literal, double-quoted


def _hit_texts(observation: str, title: str) -> list[str]:
    """Texts of the ``[i] Title: text`` lines of ``title`` in an observation."""
    prefix = f"{title}: "
    texts = []
    for line in observation.splitlines():
        match = re.match(r"\[\d+\] (.*)$", line)
        if match and match.group(1).startswith(prefix):
            texts.append(match.group(1)[len(prefix) :])
    return texts


def _shows(observation: str, hop: Hop) -> bool:
    """Whether an observation shows the hop's document stating its fact (as a whole word)."""
    texts = _hit_texts(observation, hop.doc)
    if hop.fact is None:
        return bool(texts)
    pattern = re.compile(rf"(?<!\w){re.escape(hop.fact)}(?!\w)")
    return any(pattern.search(text) for text in texts)


def _progress(hops: tuple[Hop, ...], observations: list[str]) -> tuple[int, int, list[Hop]]:
    """(hops done, failed searches since the last progress, hops the last observation completed)."""
    done, fails, newly = 0, 0, []
    for position in range(len(observations)):
        seen = observations[: position + 1]
        before = done
        while done < len(hops) and any(_shows(obs, hops[done]) for obs in seen):
            done += 1
        newly = list(hops[before:done])
        fails = 0 if done > before else fails + 1
    return done, fails, newly


def _said(hop: Hop) -> str:
    return _PHRASES[hop.relation][1].format(q=hop.query, f=hop.fact)


def _need(hop: Hop) -> str:
    return _PHRASES[hop.relation][0].format(q=hop.query)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _search_step(task: Task, question: Question, hop: Hop, attempt: int, observations: list[str],
                 newly: list[Hop]) -> tuple[str, str]:
    visible = hop.query in task.goal + "\n" + "\n".join(observations)  # never search a name it has not seen
    query = hop.query if visible else task.goal
    with_keywords, k = _ATTEMPTS[attempt]
    keywords = _PHRASES[hop.relation][2]
    if with_keywords and keywords and visible:
        query = f"{query} {keywords}"
    code = f"print(search({_literal(query)}))" if k == 3 else f"print(search({_literal(query)}, k={k}))"
    need = _need(hop) if visible else "a document that answers the question"
    action = f"search for {hop.query}" if visible else "search with the question itself"
    if attempt > 0:
        thought = f"The results do not show {need}. I will search again with a different query."
    elif newly:
        learned = "; ".join(_said(h) for h in newly)
        thought = f"{_capital(learned)}. Next I need {need}, so I {action}."
    elif question.options is not None:
        a, b = question.hops
        thought = f"I need to compare {_need(a)} and {_need(b)}. I will search for {a.query} first."
    elif len(question.hops) == 1:
        thought = f"I need to find {need}. I will {action}."
    else:
        thought = f"To answer, I first need {need}. I will {action}."
    return thought, code


def _final_step(question: Question, newly: list[Hop]) -> tuple[str, str]:
    if question.options is not None and len(question.hops) == 2 and all(h.fact for h in question.hops):
        (a, b), (hop_a, hop_b) = question.options, question.hops
        thought = (f"{_capital(_said(hop_a))} and {_said(hop_b)}. The earlier year answers the question, "
                   "so I compare the years in code.")
        code = (f"year_a = {hop_a.fact}  # {a}\nyear_b = {hop_b.fact}  # {b}\n"
                f"final_answer({_literal(a)} if year_a < year_b else {_literal(b)})")
        return thought, code
    code = f"final_answer({_literal(question.answer)})"
    if all(hop.fact is None for hop in question.hops):  # HotpotQA: the supporting documents are all read
        titles = ", ".join(hop.doc for hop in question.hops)
        return f"The entries on {titles} answer the question: {question.answer}.", code
    learned = "; ".join(_said(h) for h in newly) if newly else _said(question.hops[-1])
    return f"{_capital(learned)}, so the answer is {question.answer}.", code


def expert_step(task: Task, observations: list[str]) -> tuple[str, str]:
    """(thought, python code) of the expert's next step, given the printed output of each earlier step."""
    question = question_for_task(task)
    done, fails, newly = _progress(question.hops, observations)
    if done == len(question.hops):
        return _final_step(question, newly)
    if fails >= len(_ATTEMPTS):
        hop = question.hops[done]
        return (f"Several searches did not show {_need(hop)}; I cannot find the answer.",
                f"final_answer({_literal(GIVE_UP_ANSWER)})")
    return _search_step(task, question, question.hops[done], fails, observations, newly)


class OfflineStep(NamedTuple):
    thought: str
    code: str
    observation: str  # what the code printed (or the error it raised)


def run_expert_offline(
    task: Task, index: CorpusIndex, max_steps: int = MAX_STEPS
) -> tuple[str | None, list[OfflineStep]]:
    """Play the expert on a task with plain ``exec``; returns (final answer or None, steps).

    NOT A SANDBOX: the expert's code runs in this process with full privileges. It exists to test
    the tasks, the index and the expert (the code is the expert's own, never a model's); episodes
    of models run in :class:`agentkd.tools.sandbox.CodeSandbox`.
    """
    answers: list[Any] = []

    def search(query: str, k: int = 3) -> str:
        return format_hits(index.search(query, k=k))

    def final_answer(answer: Any) -> None:
        answers.append(answer)
        print(f"Final answer: {answer}")

    namespace: dict[str, Any] = {"search": search, "final_answer": final_answer}
    steps: list[OfflineStep] = []
    observations: list[str] = []
    for _ in range(max_steps):
        thought, code = expert_step(task, observations)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(code, f"<expert step {len(steps)}>", "exec"), namespace)  # noqa: S102 - see docstring
            except Exception as exc:  # noqa: BLE001 - an error is an observation, as in the sandbox
                print(f"{type(exc).__name__}: {exc}")
        observations.append(out.getvalue().rstrip("\n"))
        steps.append(OfflineStep(thought, code, observations[-1]))
        if answers:
            return str(answers[0]), steps
    return None, steps
