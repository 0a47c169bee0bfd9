"""Local transformers models: a batched chat generator and the student policy built on it.

:class:`HFGenerator` loads a causal LM (a local directory, or a hub name already in the cache)
and generates replies for many conversations at once: prompts are rendered with the tokenizer's
chat template, left-padded into one batch, and decoded together — one forward pass per new token
for the whole batch. It picks CUDA + bfloat16 when a GPU is there, CPU + float32 otherwise.

:class:`HFPolicy` is the :class:`~agentkd.policies.base.Policy` on top: the shared ReAct prompt
(:func:`~agentkd.policies.prompt.build_messages`) in, one batched ``generate``, the shared parser
(:func:`~agentkd.policies.prompt.parse_output`) out.

torch and transformers are imported when a generator is built, not when this module is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkd.envs import is_code
from agentkd.models.generation import (  # re-exported: callers import them from here too
    END_OF_TURN,
    LoadedModel,
    left_pad,
    load_for_generation,
    render_chat,
    stop_token_ids,
)
from agentkd.models.student import PromptFormat
from agentkd.policies.base import Decision, PolicyInput
from agentkd.policies.prompt import build_messages, decide_from_text
from agentkd.schema import PolicyInfo

__all__ = ["END_OF_TURN", "GenerationResult", "HFGenerator", "HFPolicy", "LoadedModel", "left_pad",
           "load_for_generation", "render_chat", "stop_token_ids"]

log = logging.getLogger(__name__)


@dataclass
class GenerationResult:
    """One generated reply."""

    text: str  # the reply (or, with continue_final_message, the continuation only), no special tokens
    prompt_tokens: int  # prompt length without padding
    completion_tokens: int  # generated tokens, the end-of-turn token included
    latency_s: float  # the batch's wall time divided by its size
    finish_reason: str = "stop"  # "stop" (end-of-turn token) or "length" (max_new_tokens reached)


class HFGenerator:
    """Batched chat generation with a local causal language model.

    Args:
        model: a directory written by ``save_pretrained``, a hub name (looked up in the local
            cache only, unless ``allow_download``), or an already loaded model.
        tokenizer: needed when ``model`` is a loaded model; loaded alongside otherwise.
        device, dtype: default to CUDA + bfloat16 when available, else CPU + float32.
        allow_download: let transformers fetch a hub name that is not cached.
        name: how the model is named in policy info (default: the path or name given).
        max_batch_size: split larger batches into chunks of this size (None: one batch).
    """

    def __init__(
        self,
        model: str | Path | Any,
        tokenizer: Any = None,
        *,
        device: Any = None,
        dtype: Any = None,
        allow_download: bool = False,
        name: str | None = None,
        max_batch_size: int | None = None,
    ) -> None:
        # name, model, tokenizer, device, dtype, card, stop_token_ids, pad_token_id, context_length
        self.__dict__.update(vars(load_for_generation(model, tokenizer, device=device, dtype=dtype,
                                                      allow_download=allow_download, name=name, owner="HFGenerator")))
        self.max_batch_size = max_batch_size
        self._lock = threading.Lock()  # one generate at a time: concurrent graph nodes share the model

    # ------------------------------------------------------------------------------------------

    def render(self, conversation: list[dict[str, str]], continue_final_message: bool = False) -> str:
        """The prompt text for one conversation: a new assistant turn, or the final one left open."""
        return render_chat(self.tokenizer, conversation, continue_final_message=continue_final_message)

    def generate(
        self,
        conversations: list[list[dict[str, str]]],
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        continue_final_message: bool | Sequence[bool] = False,
    ) -> list[GenerationResult]:
        """Generate one reply per conversation, all in one left-padded batch.

        ``temperature=0`` decodes greedily; otherwise it samples with ``temperature`` and ``top_p``
        (other sampling settings come from the model's generation config; seed with
        ``torch.manual_seed``). Generation stops at the end-of-turn token or after
        ``max_new_tokens`` (capped so prompt + reply fit the model's context; longer prompts lose
        their oldest tokens, with a warning). ``continue_final_message`` (one flag, or one per
        conversation) continues each conversation's final assistant message instead of starting a
        new one, and returns only the continuation.
        """
        if not conversations:
            return []
        flags = (
            [bool(continue_final_message)] * len(conversations)
            if isinstance(continue_final_message, bool)
            else [bool(f) for f in continue_final_message]
        )
        if len(flags) != len(conversations):
            raise ValueError(f"got {len(flags)} continue_final_message flags for {len(conversations)} conversations")
        prompts = [self.render(conv, flag) for conv, flag in zip(conversations, flags, strict=True)]
        step = self.max_batch_size or len(prompts)
        with self._lock:
            results: list[GenerationResult] = []
            for start in range(0, len(prompts), step):
                results += self._generate_batch(prompts[start : start + step], max_new_tokens, temperature, top_p)
        return results

    def _generate_batch(
        self, prompts: list[str], max_new_tokens: int, temperature: float, top_p: float
    ) -> list[GenerationResult]:
        import torch

        started = time.perf_counter()
        max_new = max(1, min(int(max_new_tokens), self.context_length - 1))
        max_prompt = self.context_length - max_new
        encoded = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        for i, ids in enumerate(encoded):
            if len(ids) > max_prompt:
                log.warning("prompt of %d tokens cut to its last %d to fit the context", len(ids), max_prompt)
                encoded[i] = ids[-max_prompt:]
        input_ids, attention_mask = left_pad(encoded, self.pad_token_id)
        width = input_ids.shape[1]

        sampling: dict[str, Any]
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": float(temperature), "top_p": float(top_p)}
        else:  # greedy; unset sampling knobs so the model's sampling defaults do not warn
            sampling = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention_mask.to(self.device),
                max_new_tokens=max_new,
                eos_token_id=self.stop_token_ids or None,
                pad_token_id=self.pad_token_id,
                **sampling,
            )
        new_tokens = output[:, width:].tolist()
        latency = (time.perf_counter() - started) / len(prompts)

        stop = set(self.stop_token_ids)
        results = []
        for ids, row in zip(encoded, new_tokens, strict=True):
            end = next((j for j, t in enumerate(row) if t in stop), None)
            kept = row if end is None else row[:end]
            results.append(
                GenerationResult(
                    text=self.tokenizer.decode(kept, skip_special_tokens=True),
                    prompt_tokens=len(ids),
                    completion_tokens=len(row) if end is None else end + 1,
                    latency_s=latency,
                    finish_reason="length" if end is None else "stop",
                )
            )
        return results


class HFPolicy:
    """A :class:`~agentkd.policies.base.Policy` driven by a local transformers model.

    Args:
        model_or_generator: an :class:`HFGenerator`, or anything ``HFGenerator`` loads (path or name).
        max_new_tokens, temperature, top_p: generation settings (recorded in ``info.params``).
        prompt: how the prompt is built. Default: the format on the student's card (the one it
            was trained with, see :class:`~agentkd.models.student.StudentCard`); for a model
            without a card, the last 8 steps of history and the admissible actions.
        name: the model's name in ``info`` (default: the generator's path or name).
    """

    def __init__(
        self,
        model_or_generator: HFGenerator | str | Path,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        prompt: PromptFormat | None = None,
        name: str | None = None,
    ) -> None:
        if isinstance(model_or_generator, HFGenerator):
            self.generator = model_or_generator
        else:
            self.generator = HFGenerator(model_or_generator)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        card = self.generator.card
        self.prompt = prompt or (card.prompt if card else PromptFormat(max_history=8, show_admissible=True))
        self.info = PolicyInfo(
            kind="hf_model",
            name=name or self.generator.name,
            params={
                "temperature": temperature,
                "top_p": top_p,
                "max_new_tokens": max_new_tokens,
                "max_history": self.prompt.max_history,
                "show_admissible": self.prompt.show_admissible,
            },
        )

    def act(self, inputs: list[PolicyInput]) -> list[Decision]:
        """One batched generation for all inputs; unparseable outputs become invalid decisions."""
        if not inputs:
            return []
        results = self.generator.generate(
            [build_messages(inp, self.prompt.max_history, self.prompt.show_admissible) for inp in inputs],
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
        )
        return [
            decide_from_text(result.text, inp.admissible_actions, prompt_tokens=result.prompt_tokens,
                             completion_tokens=result.completion_tokens, latency_s=result.latency_s,
                             code=is_code(inp.task.env))
            for inp, result in zip(inputs, results, strict=True)
        ]
