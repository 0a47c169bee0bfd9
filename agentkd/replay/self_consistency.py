"""Self-consistent action generation: k sampled replies in, one action out.

Each sample is parsed with the shared parser; samples that do not parse, or whose action is not
admissible, are dropped. The remaining ones vote on their *normalised action* (the admissible
spelling, or case- and space-folded text where the action space is open) — never on what an
action prints, so candidates that do nothing cannot "agree". The most voted action wins; a tie
goes to the action whose samples have the higher mean log-probability per token. When no sample
is valid, the best-scoring sample is used as it is (and the step counts as invalid).

Code actions (:func:`vote_by_outcome`) are judged by what they do: each distinct candidate runs in
its own fork of the episode's interpreter (``run``, e.g. ``CodeEnv.try_action``); candidates that do
not compile or raise an error are dropped, and the rest vote on the final answer they give (numbers
compared as numbers) — or, when they give none, on what they printed. Code that shows nothing votes
on its own text, so candidates that do nothing visible still cannot "agree".
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from agentkd.policies.prompt import ParsedAction, parse_output
from agentkd.replay.loops import action_key as _key
from agentkd.schema import Candidate

__all__ = ["Vote", "vote", "vote_by_outcome"]


@dataclass
class Vote:
    """The outcome of one vote."""

    winner: int  # index of the sample whose text stands for the chosen action
    parsed: ParsedAction  # the winning sample, parsed
    agreement: float  # votes for the chosen action / all samples (0 when none was valid)
    candidates: list[Candidate] = field(default_factory=list)  # distinct valid actions with votes, then invalid ones


def _answer_key(answer: object) -> str:
    """Final answers that mean the same vote together: "42", "42.0" and "4.2e1"; "Velmora." and "velmora"."""
    text = str(answer).strip()
    try:
        number = float(text.replace(",", ""))
    except ValueError:
        return "answer: " + _key(text).rstrip(".!")
    return f"answer: {number:.12g}" if number == number else "answer: " + _key(text)  # NaN stays text


def vote(texts: Sequence[str], mean_logprobs: Sequence[float], admissible: list[str] | None,
         avoid: Collection[str] = ()) -> Vote:
    """Choose one of ``texts`` (the k samples of a step); ``mean_logprobs`` breaks ties.

    Actions whose normalised key is in ``avoid`` (for example the ones :mod:`agentkd.replay.loops`
    found tried from this observation) win only when no other valid action was sampled.
    """
    if not texts:
        raise ValueError("nothing to vote on: no samples")
    parsed = [parse_output(text, admissible) for text in texts]
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(parsed):
        if p.valid:
            groups.setdefault(_key(p.action), []).append(i)
    return _count(texts, mean_logprobs, parsed, groups, avoid=avoid)


def vote_by_outcome(texts: Sequence[str], mean_logprobs: Sequence[float],
                    run: Callable[[str], object] | None) -> Vote:
    """Choose one of ``texts`` (code-action samples) by what their code does.

    ``run(code)`` returns an outcome with ``observation`` and ``info`` (``info["code_error"]`` when
    the code failed, ``info["answer"]`` when it gave a final answer); each distinct code runs once.
    Without ``run`` (nothing to execute with) the samples vote on their code text, and none is dropped.
    """
    if not texts:
        raise ValueError("nothing to vote on: no samples")
    parsed = [parse_output(text, None, code=True) for text in texts]
    outcomes: dict[str, object] = {}
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(parsed):
        if not p.valid:
            continue
        if run is None:
            groups.setdefault(_key(p.action), []).append(i)
            continue
        if p.action not in outcomes:
            outcomes[p.action] = run(p.action)
        info = getattr(outcomes[p.action], "info", {})
        if info.get("code_error"):
            parsed[i] = ParsedAction(action=p.action, thought=p.thought, valid=False, error=str(info["code_error"]))
            continue
        if "answer" in info:
            key = _answer_key(info["answer"])
        elif info.get("silent"):
            key = "code: " + _key(p.action)
        else:
            key = "output: " + _key(getattr(outcomes[p.action], "observation", ""))
        groups.setdefault(key, []).append(i)
    # When every candidate failed, prefer one whose code ran: its error message is what the agent sees next.
    ran = [i for i, p in enumerate(parsed) if p.action]
    return _count(texts, mean_logprobs, parsed, groups, fallback=ran)


def _count(texts: Sequence[str], mean_logprobs: Sequence[float], parsed: list[ParsedAction],
           groups: dict[str, list[int]], fallback: list[int] | None = None, avoid: Collection[str] = ()) -> Vote:
    """The vote over ``groups`` (key -> indices of the valid samples that agree); with no valid sample, the
    best-scoring one of ``fallback`` (default: all). Keys in ``avoid`` rank after all others."""
    def mean(members: list[int]) -> float:
        return sum(mean_logprobs[i] for i in members) / len(members)

    def score(key: str) -> tuple[bool, int, float]:
        return key not in avoid, len(groups[key]), mean(groups[key])

    candidates = [
        Candidate(action=parsed[groups[key][0]].action, raw=texts[groups[key][0]], valid=True,
                  votes=len(groups[key]), logprob=mean(groups[key]))
        for key in sorted(groups, key=score, reverse=True)
    ]
    candidates += [Candidate(action=p.action, raw=texts[i], valid=False, votes=0, logprob=mean_logprobs[i])
                   for i, p in enumerate(parsed) if not p.valid]
    if groups:
        members = groups[max(groups, key=score)]
        # The winner's representative: its most likely sample (its thought is the one recorded).
        winner = max(members, key=lambda i: mean_logprobs[i])
        return Vote(winner=winner, parsed=parsed[winner], agreement=len(members) / len(texts), candidates=candidates)
    winner = max(fallback or range(len(texts)), key=lambda i: mean_logprobs[i])
    return Vote(winner=winner, parsed=parsed[winner], agreement=0.0, candidates=candidates)
