"""Tiny students built from scratch: a byte-level BPE tokenizer plus a small Qwen2-style model.

Nothing is downloaded: the tokenizer is trained on the texts you give (e.g. household intros and
feedback), the model is randomly initialised from a small :class:`~transformers.Qwen2Config`, and
both are saved with ``save_pretrained`` so the usual loaders work::

    path = build_tiny_model("students/tiny", texts)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)

The tokenizer speaks ChatML (``<|im_start|>role\\n...<|im_end|>``). Its chat template marks
assistant content with ``{% generation %}`` so ``return_assistant_tokens_mask=True`` (and TRL's
assistant-only loss) works, and it supports ``add_generation_prompt`` and
``continue_final_message``. Everything is deterministic for a given ``seed`` and ``texts``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agentkd.errors import ConfigError
from agentkd.models.chat_template import CHATML_TEMPLATE

__all__ = ["CHATML_TEMPLATE", "MODEL_SIZES", "SPECIAL_TOKENS", "build_tiny_model"]

BOS, IM_START, IM_END, PAD = "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"
#: Special tokens, in id order (ids 0..3).
SPECIAL_TOKENS = [BOS, IM_START, IM_END, PAD]

#: Qwen2Config sizes. "tiny" ≈ 3M parameters, "small" ≈ 15M (with a 4,096-token vocabulary).
MODEL_SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(hidden_size=192, intermediate_size=768, num_hidden_layers=4, num_attention_heads=6,
                 num_key_value_heads=2),
    "small": dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=6,
                  num_key_value_heads=2),
}


def _train_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    # The exact Qwen2 pipeline (NFC, digit-splitting regex, byte level): AutoTokenizer loads any
    # model_type="qwen2" checkpoint as Qwen2Tokenizer, which rebuilds these steps itself, so
    # training with anything else would tokenize differently after loading.
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    # trim_offsets=False keeps character offsets exact, which assistant-token masks rely on.
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte stays encodable
        show_progress=False,
    )
    tok.train_from_iterator((t for t in texts if t), trainer=trainer)
    return tok


def build_tiny_model(
    out_dir: str | Path,
    texts: Iterable[str],
    size: str = "tiny",
    vocab_size: int = 4096,
    seed: int = 0,
) -> Path:
    """Train a tokenizer on ``texts``, build a random Qwen2 model of ``size`` and save both to ``out_dir``.

    Args:
        out_dir: directory to write (created if missing); load it with ``from_pretrained(out_dir)``.
        texts: training text for the byte-level BPE tokenizer (a few hundred lines is enough).
        size: ``"tiny"`` (≈3M params, for tests) or ``"small"`` (≈15M params).
        vocab_size: target vocabulary size, special tokens included (smaller if the texts are short).
        seed: seeds the weight initialisation; the same seed and texts give identical files.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.
    """
    if size not in MODEL_SIZES:
        raise ConfigError(f"unknown size {size!r}; choose one of {sorted(MODEL_SIZES)}")
    import torch
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(texts, vocab_size),
        bos_token=BOS,
        eos_token=IM_END,  # end of an assistant turn: generation stops here
        pad_token=PAD,
        unk_token=None,
        additional_special_tokens=[IM_START],
        model_max_length=4096,
        padding_side="left",  # decoder-only generation pads on the left
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=ids[BOS],
        eos_token_id=ids[IM_END],
        pad_token_id=ids[PAD],
        **MODEL_SIZES[size],
    )
    # fork_rng keeps the caller's global RNG state untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=ids[BOS], eos_token_id=[ids[IM_END], ids[BOS]], pad_token_id=ids[PAD]
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
