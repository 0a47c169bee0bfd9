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
from agentkd.models.student import PromptFormat, StudentCard, default_device_dtype, load_student
from agentkd.policies.base import Decision, PolicyInput
from agentkd.policies.prompt import build_messages, decide_from_text
from agentkd.schema import PolicyInfo

__all__ = ["END_OF_TURN", "GenerationResult", "HFGenerator", "HFPolicy", "LoadedModel", "left_pad",
           "load_for_generation", "render_chat", "stop_token_ids"]

log = logging.getLogger(__name__)

# Tokens that end an assistant turn in common chat formats (ChatML/Qwen, Llama 3, Gemma, Phi).
END_OF_TURN = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")


@dataclass
class GenerationResult:
    """One generated reply."""

    text: str  # the reply (or, with continue_final_message, the continuation only), no special tokens
    prompt_tokens: int  # prompt length without padding
    completion_tokens: int  # generated tokens, the end-of-turn token included
    latency_s: float  # the batch's wall time divided by its size
    finish_reason: str = "stop"  # "stop" (end-of-turn token) or "length" (max_new_tokens reached)


def render_chat(tokenizer: Any, conversation: list[dict[str, str]], *, continue_final_message: bool = False,
                add_generation_prompt: bool | None = None) -> str:
    """A conversation as prompt text: with a new assistant turn opened (default), or the final one left open.

    Models without a chat template (base models) get plain ChatML.
    """
    if continue_final_message and (not conversation or conversation[-1].get("role") != "assistant"):
        raise ValueError("continue_final_message needs a conversation that ends with an assistant message")
    template = None
    if not getattr(tokenizer, "chat_template", None):
        from agentkd.models.chat_template import CHATML_TEMPLATE

        template = CHATML_TEMPLATE
    return tokenizer.apply_chat_template(
        conversation,
        tokenize=False,
        add_generation_prompt=(not continue_final_message) if add_generation_prompt is None else add_generation_prompt,
        continue_final_message=continue_final_message,
        chat_template=template,
    )


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The tokens that end a reply: the chat format's end-of-turn tokens and the model's EOS ids."""
    vocab = tokenizer.get_vocab()
    stop = {tokenizer.convert_tokens_to_ids(t) for t in END_OF_TURN if t in vocab}
    eos = model.generation_config.eos_token_id
    stop |= set(eos if isinstance(eos, list) else [eos])
    stop.add(tokenizer.eos_token_id)
    return sorted(i for i in stop if i is not None)


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    """``(input_ids, attention_mask)`` with every row ending at the same column, where generation starts."""
    import torch

    width = max(len(ids) for ids in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, ids in enumerate(rows):
        if ids:
            input_ids[i, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            attention_mask[i, width - len(ids):] = 1
    return input_ids, attention_mask


@dataclass
class LoadedModel:
    """A causal LM ready to generate: the model in eval mode on its device, and what decoding needs."""

    name: str
    model: Any
    tokenizer: Any
    device: Any
    dtype: Any
    card: StudentCard | None  # the student card, for a saved agentkd student
    stop_token_ids: list[int]
    pad_token_id: int
    context_length: int


def load_for_generation(model: str | Path | Any, tokenizer: Any = None, *, device: Any = None, dtype: Any = None,
                        allow_download: bool = False, name: str | None = None,
                        owner: str = "HFGenerator") -> LoadedModel:
    """Load (or take) a model for generation: device and precision, card, stop and pad tokens, context."""
    device, dtype = default_device_dtype(device, dtype)
    card = None
    if isinstance(model, str | Path):
        path = Path(model).expanduser()
        card = StudentCard.load(path) if path.is_dir() else None
        loaded, loaded_tokenizer = load_student(model, dtype=dtype, device=device, allow_download=allow_download)
        tokenizer = loaded_tokenizer if tokenizer is None else tokenizer
        name = name or str(model)
    else:
        if tokenizer is None:
            raise ValueError(f"pass the tokenizer along with a loaded model: {owner}(model, tokenizer)")
        loaded = model.to(device)
        name = name or str(getattr(model, "name_or_path", "") or type(model).__name__)
    loaded.eval()
    stops = stop_token_ids(loaded, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stops[0] if stops else 0)
    context = int(getattr(loaded.config, "max_position_embeddings", 0) or 4096)
    return LoadedModel(name=name, model=loaded, tokenizer=tokenizer, device=device, dtype=dtype, card=card,
                       stop_token_ids=stops, pad_token_id=pad, context_length=context)


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
