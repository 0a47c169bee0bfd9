"""Generation helpers shared by every user of a local causal LM: students replayed, policies, GRPO rollouts.

Chat rendering (with a ChatML fallback for base models), the tokens that end a reply, left padding, and
loading a model ready to generate. They sit with the models, below policies, training and replay, which
all use them. torch and transformers are imported when a helper runs, not when this module is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkd.models.student import StudentCard, default_device_dtype, load_student

__all__ = ["END_OF_TURN", "LoadedModel", "left_pad", "load_for_generation", "render_chat", "stop_token_ids"]

# Tokens that end an assistant turn in common chat formats (ChatML/Qwen, Llama 3, Gemma, Phi).
END_OF_TURN = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")


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
