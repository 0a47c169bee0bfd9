"""Policies: who picks the action.

The batched interface (:class:`Policy`, :class:`PolicyInput`, :class:`Decision`), the ReAct prompt
and parser shared by language-model policies, and the model-backed policies:

* :class:`ExpertPolicy` — the environment's scripted expert;
* :class:`HFPolicy` / :class:`HFGenerator` — a local transformers model (students);
* :class:`ChatModelPolicy` — any LangChain chat model (teachers), with the first-thought prefix;
* :class:`LocalChatModel` — a local transformers model as a LangChain chat model.

Importing this package is cheap: torch, transformers and langchain load on first use of the
model-backed classes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agentkd.policies.base import Decision, Policy, PolicyInput
from agentkd.policies.pricing import EXAMPLE_PRICES, cost_usd, load_prices, price_for
from agentkd.policies.prompt import ParsedAction, build_messages, format_step, parse_output

if TYPE_CHECKING:
    from agentkd.policies.chat import ChatModelPolicy, LocalChatModel
    from agentkd.policies.expert import ExpertPolicy
    from agentkd.policies.first_thought import first_paragraph, first_thought_messages
    from agentkd.policies.hf import GenerationResult, HFGenerator, HFPolicy

__all__ = [
    "EXAMPLE_PRICES",
    "ChatModelPolicy",
    "Decision",
    "ExpertPolicy",
    "GenerationResult",
    "HFGenerator",
    "HFPolicy",
    "LocalChatModel",
    "ParsedAction",
    "Policy",
    "PolicyInput",
    "build_messages",
    "cost_usd",
    "first_paragraph",
    "first_thought_messages",
    "format_step",
    "load_prices",
    "parse_output",
    "price_for",
]

_LAZY = {
    "ExpertPolicy": "agentkd.policies.expert",
    "GenerationResult": "agentkd.policies.hf",
    "HFGenerator": "agentkd.policies.hf",
    "HFPolicy": "agentkd.policies.hf",
    "ChatModelPolicy": "agentkd.policies.chat",
    "LocalChatModel": "agentkd.policies.chat",
    "first_paragraph": "agentkd.policies.first_thought",
    "first_thought_messages": "agentkd.policies.first_thought",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
