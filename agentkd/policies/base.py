"""The batched policy interface: who picks the action.

A policy sees a batch of `PolicyInput`s — one per running episode — and returns one `Decision` per
input. Batching is what makes model policies fast (one forward pass for many episodes); simple
policies just loop. Every policy describes itself with a `PolicyInfo`, which goes into the
trajectory and its deterministic id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agentkd.schema import Candidate, PolicyInfo, Principle, Step, Task


@dataclass
class PolicyInput:
    """What a policy sees for one episode at one step."""

    task: Task
    observation: str  # the current observation (the intro text at step 0)
    history: list[Step] = field(default_factory=list)  # steps taken so far in this episode
    admissible_actions: list[str] | None = None  # None where the action space is open-ended
    env: Any = None  # the episode's environment; experts read their action from it
    seed: int = 0  # the episode's seed: repeated episodes of one task differ by it (sampling is seeded by it)
    principles: list[str] = field(default_factory=list)  # guidance shown in the prompt's system message
    # The records behind retrieved principles, for agents that read structured data (a search order)
    # rather than text; only what is in `principles` is shown, so this never holds more.
    principle_records: list[Principle] = field(default_factory=list)


@dataclass
class Decision:
    """A policy's choice for one episode, with everything the recorder keeps."""

    action: str
    thought: str = ""
    raw_output: str = ""  # the model's text exactly as produced ("" for non-model policies)
    valid: bool = True  # False when the output could not be parsed into an action
    candidates: list[Candidate] = field(default_factory=list)
    deferred: bool = False  # the step was handed to a teacher
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    error: str | None = None  # why the output was invalid, when it was
    info: dict[str, Any] = field(default_factory=dict)  # extra facts for the step record (e.g. vote agreement)

    def step_fields(self) -> dict[str, Any]:
        """The `Step` fields this decision fills, as keyword arguments; ``error``, when set, goes into ``info``.

        ``info`` is a fresh dict, so the caller may add to it.
        """
        info = {**self.info, **({"error": self.error} if self.error is not None else {})}
        return {"thought": self.thought, "action": self.action, "raw_output": self.raw_output, "valid": self.valid,
                "candidates": self.candidates, "deferred": self.deferred, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "latency_s": self.latency_s, "info": info}


@runtime_checkable
class Policy(Protocol):
    info: PolicyInfo

    def act(self, inputs: list[PolicyInput]) -> list[Decision]:
        """One decision per input, in order."""
        ...
