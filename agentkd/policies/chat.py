"""LangChain chat models as policies, and a local transformers model as a LangChain chat model.

:class:`ChatModelPolicy` drives any LangChain ``BaseChatModel`` — a hosted teacher through
``langchain-openai`` (OpenAI-compatible endpoints, vLLM), or :class:`LocalChatModel` — with the
shared ReAct prompt and parser, reading token usage from ``AIMessage.usage_metadata``.

With ``first_thought=True`` it applies the **first-thought prefix** (:mod:`agentkd.policies.first_thought`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables.config import get_config_list
from pydantic import ConfigDict, Field, model_validator

from agentkd.envs import is_code
from agentkd.errors import ConfigError
from agentkd.policies.base import Decision, PolicyInput
from agentkd.policies.first_thought import first_paragraph, first_thought_messages, join_prefix
from agentkd.policies.hf import HFGenerator
from agentkd.policies.pricing import Prices, cost_usd
from agentkd.policies.prompt import build_messages, decide_from_text
from agentkd.schema import PolicyInfo

__all__ = [
    "ChatModelPolicy",
    "LocalChatModel",
    "first_paragraph",
    "first_thought_messages",
    "from_langchain",
    "to_langchain",
]

_MESSAGE_TYPES = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}


def to_langchain(messages: list[dict[str, str]]) -> list[BaseMessage]:
    """Role/content dicts (as from :func:`build_messages`) → LangChain messages."""
    out: list[BaseMessage] = []
    for m in messages:
        cls = _MESSAGE_TYPES.get(m["role"])
        out.append(cls(content=m["content"]) if cls else ChatMessage(role=m["role"], content=m["content"]))
    return out


def from_langchain(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages → role/content dicts for a chat template."""
    out = []
    for m in messages:
        role = m.role if isinstance(m, ChatMessage) else _ROLES.get(m.type, m.type)
        out.append({"role": role, "content": m.text})
    return out


def _text(message: Any) -> str:
    return message.text if isinstance(message, BaseMessage) else str(message)


def _usage(message: Any) -> tuple[int, int]:
    usage = getattr(message, "usage_metadata", None) or {}
    return int(usage.get("input_tokens", 0) or 0), int(usage.get("output_tokens", 0) or 0)


# ---------------------------------------------------------------------------------------------
# Policy


def _model_name(chat_model: Any) -> str:
    for attr in ("model_name", "model", "model_id"):
        value = getattr(chat_model, attr, None)
        if isinstance(value, str) and value:
            return value
    return str(getattr(chat_model, "_llm_type", type(chat_model).__name__))


class ChatModelPolicy:
    """A :class:`~agentkd.policies.base.Policy` backed by a LangChain chat model (typically the teacher).

    Args:
        chat_model: any ``BaseChatModel``; its ``batch`` is called once per ``act`` (plus once for
            first-thought plans).
        name: the model's name in ``info`` (default: ``model_name``/``model``/``model_id`` of the model).
        prices: a price table or JSON file for :meth:`cost_usd` (see :mod:`agentkd.policies.pricing`).
        max_history: steps of history shown in the prompt.
        first_thought: prefill each episode's first turn with the first paragraph of a teacher plan.
        first_thought_max_chars: length cap of that paragraph.
    """

    def __init__(
        self,
        chat_model: BaseChatModel,
        name: str | None = None,
        prices: Prices | str | Path | None = None,
        *,
        max_history: int = 8,
        first_thought: bool = False,
        first_thought_max_chars: int = 400,
    ) -> None:
        self.chat_model = chat_model
        self.prices = prices
        self.max_history = max_history
        self.first_thought = first_thought
        self.first_thought_max_chars = first_thought_max_chars
        params: dict[str, Any] = {"max_history": max_history, "first_thought": first_thought}
        if first_thought:
            params["first_thought_max_chars"] = first_thought_max_chars
        for key in ("temperature", "top_p", "max_tokens"):
            value = getattr(chat_model, key, None)
            if isinstance(value, int | float) and not isinstance(value, bool):
                params[key] = value
        self.info = PolicyInfo(kind="chat_model", name=name or _model_name(chat_model), params=params)

    def cost_usd(self, decision: Decision) -> float:
        """USD cost of one decision's tokens at this model's price (0.0 when unpriced)."""
        return cost_usd(decision.prompt_tokens, decision.completion_tokens, self.info.name, self.prices)

    def first_thoughts(self, inputs: list[PolicyInput]) -> list[tuple[str | None, int, int, float]]:
        """Per input: ``(prefix or None, plan prompt tokens, plan completion tokens, plan latency)``.

        Only inputs at an episode's first step (empty history) get a plan, all in one batch.
        """
        out: list[tuple[str | None, int, int, float]] = [(None, 0, 0, 0.0)] * len(inputs)
        first = [i for i, inp in enumerate(inputs) if not inp.history]
        if not self.first_thought or not first:
            return out
        started = time.perf_counter()
        replies = self.chat_model.batch([to_langchain(first_thought_messages(inputs[i])) for i in first])
        latency = (time.perf_counter() - started) / len(first)
        for i, reply in zip(first, replies, strict=True):
            paragraph = first_paragraph(_text(reply), self.first_thought_max_chars)
            out[i] = ("Thought: " + paragraph if paragraph else None, *_usage(reply), latency)
        return out

    def act(self, inputs: list[PolicyInput]) -> list[Decision]:
        """One ``batch`` call for all inputs; unparseable replies become invalid decisions."""
        decisions = self.act_each(inputs)
        for decision in decisions:
            if isinstance(decision, Exception):
                raise decision
        return decisions  # type: ignore[return-value]

    def act_each(self, inputs: list[PolicyInput]) -> list[Decision | Exception]:
        """Like :meth:`act`, but a request that fails gives its exception in its place, so that one failed
        call fails one episode, not every episode batched with it."""
        if not inputs:
            return []
        plans = self.first_thoughts(inputs)
        requests = []
        for inp, (prefix, *_) in zip(inputs, plans, strict=True):
            messages = to_langchain(build_messages(inp, self.max_history))
            if prefix:
                messages.append(AIMessage(content=prefix))  # prefill: the model continues this turn
            requests.append(messages)
        started = time.perf_counter()
        replies = self.chat_model.batch(requests, return_exceptions=True)
        latency = (time.perf_counter() - started) / len(inputs)

        decisions: list[Decision | Exception] = []
        for inp, (prefix, plan_in, plan_out, plan_latency), reply in zip(inputs, plans, replies, strict=True):
            if isinstance(reply, Exception):
                decisions.append(reply)
                continue
            text = _text(reply)
            prompt_tokens, completion_tokens = _usage(reply)
            decisions.append(decide_from_text(
                join_prefix(prefix, text) if prefix else text, inp.admissible_actions,
                code=is_code(inp.task.env),
                prompt_tokens=prompt_tokens + plan_in, completion_tokens=completion_tokens + plan_out,
                latency_s=latency + plan_latency,
            ))
        return decisions


def init_chat(spec: str, *, temperature: float = 0.0, max_tokens: int | None = None) -> BaseChatModel:
    """``provider:model`` → a LangChain chat model (``max_tokens``: the reply cap, None for the provider's).

    ``openai:MODEL`` is langchain-openai's ``ChatOpenAI`` (``OPENAI_BASE_URL`` points it at any
    OpenAI-compatible server: vLLM, ``agentkd serve``); any other provider goes through LangChain's
    ``init_chat_model`` and needs that provider's package (e.g. ``langchain-anthropic``).
    """
    provider, _, model = spec.partition(":")
    if not model:
        raise ConfigError(f"{spec!r}: write provider:model, e.g. openai:gpt-4o-mini")
    limits = {} if max_tokens is None else {"max_tokens": max_tokens}
    if provider == "openai":
        try:
            from langchain_openai import ChatOpenAI
        except ImportError as exc:
            raise ConfigError(f"{spec} needs langchain-openai: pip install 'agentkd[chat]'") from exc
        return ChatOpenAI(model=model, temperature=temperature, **limits)
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as exc:
        raise ConfigError(f"{spec} needs LangChain's init_chat_model: pip install 'agentkd[chat]'") from exc
    try:
        return init_chat_model(model, model_provider=provider, temperature=temperature, **limits)
    except (ImportError, ValueError) as exc:  # a missing integration package, or an unknown provider
        raise ConfigError(f"{spec}: {' '.join(str(exc).split())}") from exc


# ---------------------------------------------------------------------------------------------
# A local transformers model as a LangChain chat model


class LocalChatModel(BaseChatModel):
    """A local transformers causal LM behind LangChain's chat-model interface.

    ``LocalChatModel(model="path/to/model")`` loads it with :class:`HFGenerator` (local files only
    unless ``allow_download``); ``LocalChatModel(generator=gen)`` shares an existing one. When the
    last input message is an ``AIMessage``, that message is continued (prefill) and only the
    continuation is returned. ``max_tokens``/``temperature``/``top_p`` can also be passed per call.

    ``batch`` (and ``abatch``, in a worker thread) runs all inputs as one batched generation. When
    callbacks are configured it falls back to LangChain's per-input path, so every run is still
    reported to them.
    """

    model_config = ConfigDict(populate_by_name=True, protected_namespaces=(), arbitrary_types_allowed=True)

    model_name: str = Field(default="", alias="model")
    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    allow_download: bool = False
    generator: Any = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _load_generator(self) -> LocalChatModel:
        if self.generator is None:
            if not self.model_name:
                raise ConfigError("LocalChatModel needs model=<path or name> or generator=<HFGenerator>")
            self.generator = HFGenerator(self.model_name, allow_download=self.allow_download)
        elif not self.model_name:
            self.model_name = self.generator.name
        return self

    @property
    def _llm_type(self) -> str:
        return "agentkd-local-transformers"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "max_tokens": self.max_tokens, "temperature": self.temperature,
                "top_p": self.top_p}

    def _run(self, batch: list[list[BaseMessage]], stop: list[str] | None, **kwargs: Any) -> list[AIMessage]:
        conversations = [from_langchain(messages) for messages in batch]
        results = self.generator.generate(
            conversations,
            max_new_tokens=int(kwargs.get("max_tokens") or self.max_tokens),
            temperature=float(kwargs.get("temperature", self.temperature)),
            top_p=float(kwargs.get("top_p", self.top_p)),
            continue_final_message=[bool(c) and c[-1]["role"] == "assistant" for c in conversations],
        )
        replies = []
        for result in results:
            text = result.text
            for s in stop or []:
                text = text.split(s, 1)[0] if s else text
            replies.append(
                AIMessage(
                    content=text,
                    usage_metadata={
                        "input_tokens": result.prompt_tokens,
                        "output_tokens": result.completion_tokens,
                        "total_tokens": result.prompt_tokens + result.completion_tokens,
                    },
                    response_metadata={
                        "model_name": self.model_name,
                        "finish_reason": result.finish_reason,
                        "latency_s": result.latency_s,
                    },
                )
            )
        return replies

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        [reply] = self._run([messages], stop, **kwargs)
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def batch(
        self,
        inputs: list[Any],
        config: Any = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        if not inputs:
            return []
        configs = get_config_list(config, len(inputs))
        if self.callbacks or any(c.get("callbacks") for c in configs):
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        try:
            batch = [self._convert_input(item).to_messages() for item in inputs]
            return self._run(batch, kwargs.pop("stop", None), **kwargs)
        except Exception as exc:
            if return_exceptions:
                return [exc for _ in inputs]
            raise

    async def abatch(
        self,
        inputs: list[Any],
        config: Any = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        configs = get_config_list(config, len(inputs)) if inputs else []
        if self.callbacks or any(c.get("callbacks") for c in configs):
            return await super().abatch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        # One batched generation in a worker thread, so the event loop keeps serving other episodes.
        return await asyncio.to_thread(self.batch, inputs, config, return_exceptions=return_exceptions, **kwargs)
