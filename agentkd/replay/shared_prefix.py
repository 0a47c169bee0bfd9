"""Decoding k samples of one prompt without k copies of its cache: attention over a shared prefix.

When a step samples k replies per episode, every sample attends to the same prompt. Repeating the
prompt's keys and values k times makes each decode step read the prompt k times — on a CPU, or any
memory-bound device, that is what costs. Here the prompt's keys and values stay one copy per
episode; each decode step computes, per layer,

    scores over the prompt   — the k samples' queries against the one shared prefix (one matmul),
    scores over the reply    — each sample against its own generated tokens (short),

and merges the two softmax parts exactly (shared max, summed normalisers). The result equals
attention over the concatenated cache; only the memory traffic changes.

It plugs into transformers as an attention implementation that behaves exactly like SDPA unless a
:class:`SharedPrefix` context is active (the engine activates it around decoding).
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["ATTENTION_NAME", "SharedPrefix", "install", "shared_prefix"]

ATTENTION_NAME = "agentkd_shared_prefix"
_ACTIVE: contextvars.ContextVar[SharedPrefix | None] = contextvars.ContextVar("agentkd_shared_prefix", default=None)


@dataclass
class SharedPrefix:
    """The prompts' cache (one row per episode) and which generated tokens each sample row may see."""

    layers: list[tuple[Any, Any]]  # per layer: keys, values of shape (episodes, kv_heads, prefix_len, dim)
    prefix_mask: Any  # (episodes, prefix_len) bool: real prompt tokens (padding and holes are False)
    samples: int  # rows per episode; sample rows are grouped by episode
    reply_mask: Any = None  # (rows, reply_len) bool: generated tokens each row sees (set every step)
    prefix_bias: Any = None  # prefix_mask as an additive mask (0 / -inf), built on first use


@contextmanager
def shared_prefix(context: SharedPrefix):
    token = _ACTIVE.set(context)
    try:
        yield context
    finally:
        _ACTIVE.reset(token)


def _attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, scaling: float | None = None,
               dropout: float = 0.0, **kwargs: Any) -> tuple[Any, None]:
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    context = _ACTIVE.get()
    if context is None or query.shape[2] != 1:  # not decoding samples: plain SDPA
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    rows, heads, _, dim = query.shape
    prefix_keys, prefix_values = context.layers[module.layer_idx]
    episodes, kv_heads, prefix_len, _ = prefix_keys.shape
    k, groups = context.samples, heads // kv_heads
    scale = scaling if scaling is not None else dim ** -0.5
    neg = torch.finfo(query.dtype).min

    # Prompt part: (episodes, kv_heads, groups * k, dim) queries against one copy of each prompt.
    q = query.view(episodes, k, kv_heads, groups, dim).permute(0, 2, 3, 1, 4).reshape(episodes, kv_heads, groups * k,
                                                                                      dim)
    if query.device.type == "cpu":
        return _attention_cpu(query, key, value, q, prefix_keys, prefix_values, context, scale, neg)
    prefix_scores = torch.matmul(q, prefix_keys.transpose(-1, -2)) * scale
    prefix_scores = prefix_scores.masked_fill(~context.prefix_mask[:, None, None, :], neg)

    # Reply part: each row against its own generated tokens (GQA heads expanded; replies are short).
    reply_keys = key.repeat_interleave(groups, dim=1)
    reply_values = value.repeat_interleave(groups, dim=1)
    reply_scores = torch.matmul(query, reply_keys.transpose(-1, -2)) * scale  # (rows, heads, 1, reply_len)
    reply_scores = reply_scores.masked_fill(~context.reply_mask[:, None, None, :], neg)

    # One softmax over both parts: shared max, summed normalisers.
    prefix_rows = prefix_scores.view(episodes, kv_heads, groups, k, prefix_len).permute(0, 3, 1, 2, 4)
    prefix_rows = prefix_rows.reshape(rows, heads, 1, prefix_len)
    top = torch.maximum(prefix_rows.amax(-1, keepdim=True), reply_scores.amax(-1, keepdim=True))
    prefix_weights = torch.exp(prefix_scores - top.view(episodes, k, kv_heads, groups, 1).permute(0, 2, 3, 1, 4)
                               .reshape(episodes, kv_heads, groups * k, 1))
    reply_weights = torch.exp(reply_scores - top)
    total = (prefix_weights.view(episodes, kv_heads, groups, k, prefix_len).sum(-1).permute(0, 3, 1, 2)
             .reshape(rows, heads, 1, 1) + reply_weights.sum(-1, keepdim=True))
    prefix_out = torch.matmul(prefix_weights, prefix_values)  # (episodes, kv_heads, groups * k, dim)
    prefix_out = prefix_out.view(episodes, kv_heads, groups, k, dim).permute(0, 3, 1, 2, 4).reshape(rows, heads, 1,
                                                                                                   dim)
    out = (prefix_out + torch.matmul(reply_weights, reply_values)) / total
    return out.transpose(1, 2).contiguous(), None  # (rows, 1, heads, dim), as transformers expects


def _attention_cpu(query: Any, key: Any, value: Any, q: Any, prefix_keys: Any, prefix_values: Any,
                   context: SharedPrefix, scale: float, neg: float) -> tuple[Any, None]:
    """The same attention with the prompt part in PyTorch's fused CPU kernel, which returns its log-normaliser.

    The prompt part is the cost (every sample's queries against thousands of prompt tokens, per layer and
    token); the fused kernel never materialises its scores and was 2.7x faster than the matmuls for 24
    episodes of 8 samples over 4,000-token prompts. The parts merge through their log-sum-exps.
    """
    import torch

    rows, heads, _, dim = query.shape
    episodes, kv_heads, _, _ = prefix_keys.shape
    k, groups = context.samples, heads // kv_heads
    if context.prefix_bias is None:  # once per decode call, not per layer
        bias = torch.zeros(context.prefix_mask.shape, dtype=query.dtype, device=query.device)
        context.prefix_bias = bias.masked_fill(~context.prefix_mask, float("-inf"))[:, None, None, :]
    prefix_out, prefix_lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, prefix_keys, prefix_values, attn_mask=context.prefix_bias, scale=scale)[:2]
    # Back to rows: (episodes, kv_heads, groups * k, ...) -> (rows, heads, 1, ...)
    prefix_out = prefix_out.view(episodes, kv_heads, groups, k, dim).permute(0, 3, 1, 2, 4).reshape(rows, heads, 1,
                                                                                                   dim)
    prefix_lse = prefix_lse.view(episodes, kv_heads, groups, k).permute(0, 3, 1, 2).reshape(rows, heads, 1, 1)

    reply_keys = key.repeat_interleave(groups, dim=1)
    reply_values = value.repeat_interleave(groups, dim=1)
    reply_scores = torch.matmul(query, reply_keys.transpose(-1, -2)) * scale  # (rows, heads, 1, reply_len)
    reply_scores = reply_scores.masked_fill(~context.reply_mask[:, None, None, :], neg)
    reply_lse = torch.logsumexp(reply_scores, dim=-1, keepdim=True)
    reply_out = torch.matmul(torch.softmax(reply_scores, dim=-1), reply_values)

    total = torch.logaddexp(prefix_lse, reply_lse)
    out = prefix_out * torch.exp(prefix_lse - total) + reply_out * torch.exp(reply_lse - total)
    return out.transpose(1, 2).contiguous(), None


def install(model: Any) -> bool:
    """Make ``model`` use the shared-prefix attention (SDPA outside decoding); False if it cannot."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if getattr(model.config, "_attn_implementation", None) not in ("sdpa", ATTENTION_NAME):
        return False  # flash attention and others: keep them (and repeat the prompt rows instead)
    AttentionInterface.register(ATTENTION_NAME, _attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)
    model.set_attn_implementation(ATTENTION_NAME)
    return True
