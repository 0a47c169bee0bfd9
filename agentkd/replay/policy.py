"""The student as a batched policy: greedy or self-consistent, optionally with retrieved teacher steps.

:class:`StudentPolicy` renders every running episode's prompt with the format on the student's
card (the one it was trained with), asks the :class:`~agentkd.replay.engine.ReplayEngine` for
``samples`` replies per episode in one batched call, and votes (:func:`~agentkd.replay.self_consistency.vote`; for
code actions :func:`~agentkd.replay.self_consistency.vote_by_outcome`, each candidate run in a fork of the episode).
With ``samples=1`` it decodes greedily. With a :class:`~agentkd.distill.demos.DemoRetriever`, the
teacher's most similar recorded steps are shown in the current turn (in-context distillation).

``retry`` (the ``+retry`` configuration) is free generation's answer to a refused command: where the
environment lists its admissible actions and no sample names one (or, with ``noloop``, names one not
already tried here), the step draws another round of samples at a higher temperature, up to
``retry`` rounds, and the vote runs over every round's samples. The samples of a step at
temperature 0.4 tend to agree on one wrong command ("go to shelf 4" with three shelves), so the
vote had nothing valid to pick; a hotter round spreads them. The action is still written freely
(unlike ``constrained``), only checked, as the vote always did.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from agentkd.distill.demos import with_demos
from agentkd.envs import is_code
from agentkd.errors import ConfigError
from agentkd.models.generation import render_chat
from agentkd.models.packaged import is_packaged_spec, materialize
from agentkd.models.student import PromptFormat
from agentkd.policies.base import Decision, PolicyInput
from agentkd.policies.pricing import DEFAULT_STUDENT_PRICE, token_cost
from agentkd.policies.prompt import build_messages
from agentkd.replay.constrained import build_constraint
from agentkd.replay.engine import GenerationRequest, ReplayEngine
from agentkd.replay.loops import action_key, tried_here, untried
from agentkd.replay.self_consistency import Vote, vote, vote_by_outcome
from agentkd.schema import PolicyInfo

__all__ = ["StudentPolicy", "student_fingerprint"]

#: Sampling defaults of self-consistent action generation (the agent-distillation paper's).
SC_TEMPERATURE, SC_TOP_P = 0.4, 0.8
#: ``retry`` rounds: round r samples at RETRY_TEMPERATURES[r] (the last one repeats), at least RETRY_SAMPLES replies.
RETRY_TEMPERATURES, RETRY_TOP_P, RETRY_SAMPLES = (1.0, 1.3), 1.0, 8


def student_fingerprint(path: str | Path) -> str:
    """A short hash of a student directory's config and weight files (names, sizes, times).

    Goes into the policy's params, so a retrained student in the same directory gets new
    trajectory ids instead of being mistaken for the old one.
    """
    digest = hashlib.sha256()
    if is_packaged_spec(str(path)):  # smollm2-135m, gguf:PATH: the converted directory
        path = materialize(str(path))
    for file in sorted(Path(path).glob("*")):
        if file.suffix in (".json", ".safetensors", ".bin") and file.is_file():
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


class StudentPolicy:
    """A :class:`~agentkd.policies.base.Policy` for a trained student on the replay engine.

    Args:
        engine: the engine (or a student directory to build one from).
        samples: replies per step; 1 decodes greedily, more votes (self-consistency).
        temperature, top_p: sampling for ``samples`` > 1 (defaults 0.4 and 0.8).
        max_new_tokens: a reply's token cap (garbage and endless text stop here and count as invalid).
        prompt: the prompt format (default: the student card's).
        demos: a retriever of teacher steps for in-context distillation.
        constrained: decode the action line through a trie of the admissible actions, where the
            environment lists them (:mod:`agentkd.replay.constrained`): every sample that writes its
            action line within ``max_new_tokens`` names an admissible action.
        noloop: avoid going in circles (:mod:`agentkd.replay.loops`): an action already taken from the
            current observation is left out of the constrained trie, and wins a vote only when no
            untried action was sampled (greedy, unconstrained decoding has nothing else to pick).
        retry: rounds of hotter samples for a step where no sample names an admissible (and, with
            ``noloop``, untried) action; 0: none.
        price: USD per 1M (input, output) tokens, for the episode's cost (see :mod:`agentkd.replay.cascade`).
        name: the policy's name in trajectories (default: the student's path).
    """

    def __init__(self, engine: ReplayEngine | str | Path, *, samples: int = 1, temperature: float | None = None,
                 top_p: float | None = None, max_new_tokens: int = 96, prompt: PromptFormat | None = None,
                 demos: Any = None, price: tuple[float, float] = DEFAULT_STUDENT_PRICE,
                 name: str | None = None, constrained: bool = False, noloop: bool = False,
                 retry: int = 0) -> None:
        if samples < 1:
            raise ConfigError(f"samples must be at least 1, not {samples}")
        if retry < 0:
            raise ConfigError(f"retry must be 0 or more rounds, not {retry}")
        self.engine = engine if isinstance(engine, ReplayEngine) else ReplayEngine(engine)
        card = self.engine.card
        self.prompt = prompt or (card.prompt if card else PromptFormat())
        if self.prompt.demos and demos is None:
            raise ConfigError(f"the student {self.engine.name} was trained with the teacher's steps in its prompt "
                             "(in-context distillation): replay it with them (eval configuration '+icd', which "
                             "needs --store with teacher trajectories)")
        self.samples = samples
        self.temperature = (SC_TEMPERATURE if samples > 1 else 0.0) if temperature is None else temperature
        self.top_p = (SC_TOP_P if samples > 1 else 1.0) if top_p is None else top_p
        self.max_new_tokens = max_new_tokens
        self.demos = demos
        self.price = price
        self.constrained = constrained
        self.noloop = noloop
        self.retry = retry
        params: dict[str, Any] = {"samples": samples, "temperature": self.temperature, "top_p": self.top_p,
                                  "max_new_tokens": max_new_tokens, "max_history": self.prompt.max_history,
                                  "show_admissible": self.prompt.show_admissible}
        if Path(self.engine.name).is_dir() or is_packaged_spec(self.engine.name):
            params["fingerprint"] = student_fingerprint(self.engine.name)
        if demos is not None:
            params["icd"] = demos.describe()
        if constrained:
            params["constrained"] = True
        if noloop:
            params["noloop"] = True
        if retry:
            params["retry"] = retry
        self.info = PolicyInfo(kind="student", name=name or self.engine.name, params=params)

    def messages(self, inp: PolicyInput, demos: list[str] | None = None) -> list[dict[str, str]]:
        """The student's prompt for one input (retrieved teacher steps go before the current observation)."""
        return with_demos(build_messages(inp, self.prompt.max_history, self.prompt.show_admissible), demos)

    def cost_usd(self, decision: Decision) -> float:
        return token_cost(decision.prompt_tokens, decision.completion_tokens, self.price)

    def act(self, inputs: list[PolicyInput]) -> list[Decision]:
        if not inputs:
            return []
        started = time.perf_counter()
        demos = self.demos.retrieve(inputs) if self.demos is not None else [None] * len(inputs)
        tokenizer = self.engine.tokenizer
        requests = []
        tried = [tried_here(inp) if self.noloop else set() for inp in inputs]
        for inp, shown, done in zip(inputs, demos, tried, strict=True):
            text = render_chat(tokenizer, self.messages(inp, shown))
            constraint = None
            if self.constrained and inp.admissible_actions and not is_code(inp.task.env):
                constraint = build_constraint(tokenizer, untried(inp.admissible_actions, done))
                constraint = constraint if constraint.trie else None  # nothing to spell: decode freely
            requests.append(GenerationRequest(
                key=id(inp.env) if inp.env is not None else inp.task.task_id,
                prompt_ids=self.engine.encode(text), n=self.samples, temperature=self.temperature,
                top_p=self.top_p, max_new_tokens=self.max_new_tokens, constraint=constraint,
                seed=f"{inp.task.task_id}:{inp.seed}:{len(inp.history)}"))  # this episode's step, whatever else runs
        results = self.engine.generate(requests)
        outcomes = [self._vote(inp, samples, done) for inp, samples, done in zip(inputs, results, tried, strict=True)]
        for round_ in range(self.retry):
            stuck = [i for i, (inp, outcome) in enumerate(zip(inputs, outcomes, strict=True))
                     if inp.admissible_actions and not is_code(inp.task.env) and not _fresh(outcome, tried[i])]
            if not stuck:
                break
            hotter = [replace(requests[i], n=max(self.samples, RETRY_SAMPLES), top_p=RETRY_TOP_P,
                              temperature=RETRY_TEMPERATURES[min(round_, len(RETRY_TEMPERATURES) - 1)],
                              seed=f"{requests[i].seed}:retry{round_ + 1}") for i in stuck]
            for i, more in zip(stuck, self.engine.generate(hotter), strict=True):
                results[i] = results[i] + more  # the cached prompt is reused: a round costs its decoding only
                outcomes[i] = self._vote(inputs[i], results[i], tried[i])
        latency = (time.perf_counter() - started) / len(inputs)

        decisions = []
        for request, samples, outcome, shown in zip(requests, results, outcomes, demos, strict=True):
            best = samples[outcome.winner]
            p = outcome.parsed
            decisions.append(Decision(
                action=p.action, thought=p.thought, raw_output=best.text, valid=p.valid, error=p.error,
                candidates=outcome.candidates if len(samples) > 1 else [],
                prompt_tokens=len(request.prompt_ids), completion_tokens=sum(len(s.token_ids) for s in samples),
                latency_s=latency,
                info={"agreement": round(outcome.agreement, 4), "finish": best.finish_reason,
                      **({"demos": len(shown)} if shown else {}),
                      **({"samples": len(samples)} if len(samples) > request.n else {})},
            ))
        return decisions

    def _vote(self, inp: PolicyInput, samples: list[Any], tried: set[str]) -> Vote:
        texts, logprobs = [s.text for s in samples], [s.mean_logprob for s in samples]
        if not is_code(inp.task.env):
            return vote(texts, logprobs, inp.admissible_actions, avoid=tried)
        # code: with several samples, each candidate runs in its own fork of the episode's sandbox
        run = getattr(inp.env, "try_action", None) if self.samples > 1 else None
        return vote_by_outcome(texts, logprobs, run if callable(run) else None)


def _fresh(outcome: Vote, tried: set[str]) -> bool:
    """Whether the vote found a valid action that was not already taken from this observation."""
    return outcome.parsed.valid and action_key(outcome.parsed.action) not in tried
