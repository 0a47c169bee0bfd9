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
#: Masked scores (finite: a row with nothing to see gets weight 0 in the merge, never NaN).
_NEG = -3.0e38
_ACTIVE: contextvars.ContextVar[SharedPrefix | None] = contextvars.ContextVar("agentkd_shared_prefix", default=None)


@dataclass
class SharedPrefix:
    """The prompts' cache (one row per episode) and which generated tokens each sample row may see."""

    layers: list[tuple[Any, Any]]  # per layer: keys, values of shape (episodes, kv_heads, prefix_len, dim)
    prefix_mask: Any  # (episodes, prefix_len) bool: real prompt tokens (padding and holes are False)
    samples: int  # the grid's width: rows per episode (the most any episode has, after place); grouped by episode
    reply_mask: Any = None  # (rows, reply_len) bool: generated tokens each row sees (set every step)
    prefix_bias: Any = None  # prefix_mask as an additive mask (0 / -inf), built on first use
    # Each row's place in the (episodes x samples) grid of queries, when episodes have different numbers of rows
    # (see place); None: rows fill the grid in order.
    slots: Any = None

    def place(self, episode: Any, episodes: int) -> None:
        """Rows whose episodes are ``episode`` (grouped, in order; some may have none): the grid is as wide as
        the most rows an episode has, and the prompt part attends for the empty places too (and drops them)."""
        import torch

        counts = torch.bincount(episode, minlength=episodes)
        self.samples = int(counts.max())
        first = torch.cumsum(counts, 0) - counts  # each episode's first row
        self.slots = episode * self.samples + torch.arange(len(episode), device=episode.device) - first[episode]


@contextmanager
def shared_prefix(context: SharedPrefix):
    token = _ACTIVE.set(context)
    try:
        yield context
    finally:
        _ACTIVE.reset(token)


def _attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, scaling: float | None = None,
               dropout: float = 0.0, **kwargs: Any) -> tuple[Any, None]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    context = _ACTIVE.get()
    if context is None or query.shape[2] != 1:  # not decoding samples: SDPA
        if _groups_queries(module, query, attention_mask, dropout, kwargs):
            return _grouped_query_attention(query, key, value, attention_mask, scaling), None
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    out = _decode_attention(query, key, value, context, module.layer_idx, scale)
    return out.to(query.dtype).transpose(1, 2).contiguous(), None  # (rows, 1, heads, dim), as transformers expects


def _groups_queries(module: Any, query: Any, mask: Any, dropout: float, kwargs: dict) -> bool:
    """Whether a prefill with a mask can attend per key/value head (see :func:`_grouped_query_attention`)."""
    groups = getattr(module, "num_key_value_groups", 1)
    return (groups > 1 and query.shape[2] > 1 and mask is not None and mask.dim() == 4 and mask.shape[1] == 1
            and not dropout and not kwargs.get("softcap") and kwargs.get("position_bias") is None)


def _grouped_query_attention(query: Any, key: Any, value: Any, mask: Any, scale: float | None) -> Any:
    """SDPA for grouped-query attention with a mask, without copying the keys and values once per query head.

    transformers repeats each key/value head for its query heads when there is a mask (``repeat_kv``); a
    replay prefill with long cached prompts then writes and reads the whole cache three times over (SmolLM2:
    9 query heads, 3 key/value heads). Here each key/value head's query heads are stacked along the query
    axis instead, with the mask repeated to match: the same scores, softmax and sums per query head.
    Returns (batch, queries, heads, dim), as transformers expects.
    """
    import torch

    batch, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    # Query head h uses key/value head h // groups (transformers' order): it becomes rows j * length + t there.
    stacked = query.reshape(batch, kv_heads, groups * length, dim)
    out = torch.nn.functional.scaled_dot_product_attention(stacked, key, value, attn_mask=mask.repeat(1, 1, groups, 1),
                                                           scale=scale)
    return out.reshape(batch, heads, length, dim).transpose(1, 2).contiguous()


def _decode_attention(query: Any, key: Any, value: Any, context: SharedPrefix, layer: int, scale: float, *,
                      fused_cpu: bool | None = None) -> Any:
    """Attention over the shared prompt, then each row's reply, as one softmax: float32 (rows, heads, 1, dim).

    The parts merge through their log-sum-exps in float32 (a bf16 softmax over thousands of prompt tokens
    loses precision); the caller casts back to the model's dtype, which its next projection expects.
    ``fused_cpu`` (default: on CPU tensors) takes the prompt part through PyTorch's fused CPU kernel.
    """
    import torch

    prefix_keys, prefix_values = context.layers[layer]
    episodes, kv_heads = prefix_keys.shape[:2]
    rows, heads, _, dim = query.shape
    k, groups = context.samples, heads // kv_heads
    grid = query
    if context.slots is not None:
        grid = query.new_zeros((episodes * k, heads, 1, dim))
        grid[context.slots] = query
    # Each episode's k samples' queries against one copy of its prompt: (episodes, kv_heads, groups * k, dim).
    q = grid.view(episodes, k, kv_heads, groups, dim).permute(0, 2, 3, 1, 4).reshape(episodes, kv_heads, groups * k,
                                                                                      dim)
    prefix = _prefix_fused_cpu if (query.device.type == "cpu" if fused_cpu is None else fused_cpu) else _prefix_matmul
    prefix_out, prefix_lse = prefix(q, prefix_keys, prefix_values, context, scale)

    def to_rows(x: Any) -> Any:  # (episodes, kv_heads, groups * k, d) -> (rows, heads, 1, d)
        x = x.view(episodes, kv_heads, groups, k, -1).permute(0, 3, 1, 2, 4).reshape(episodes * k, heads, 1, -1)
        return x if context.slots is None else x[context.slots]

    # Reply part: each row against its own generated tokens (GQA heads expanded; replies are short).
    reply_keys = key.repeat_interleave(groups, dim=1)
    reply_values = value.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query, reply_keys.transpose(-1, -2)).float() * scale  # (rows, heads, 1, reply_len)
    scores = scores.masked_fill(~context.reply_mask[:, None, None, :], _NEG)
    reply_lse = torch.logsumexp(scores, dim=-1, keepdim=True)
    reply_out = torch.matmul(torch.softmax(scores, dim=-1).to(reply_values.dtype), reply_values).float()

    prefix_out, prefix_lse = to_rows(prefix_out.float()), to_rows(prefix_lse.float())
    total = torch.logaddexp(prefix_lse, reply_lse)
    return prefix_out * torch.exp(prefix_lse - total) + reply_out * torch.exp(reply_lse - total)


def _prefix_matmul(q: Any, prefix_keys: Any, prefix_values: Any, context: SharedPrefix, scale: float) -> tuple:
    """The prompt part as two matmuls with a float32 softmax (GPUs): its output and log-sum-exp."""
    import torch

    scores = torch.matmul(q, prefix_keys.transpose(-1, -2)).float() * scale
    scores = scores.masked_fill(~context.prefix_mask[:, None, None, :], _NEG)
    lse = torch.logsumexp(scores, dim=-1, keepdim=True)
    return torch.matmul(torch.softmax(scores, dim=-1).to(prefix_values.dtype), prefix_values), lse


def _prefix_fused_cpu(q: Any, prefix_keys: Any, prefix_values: Any, context: SharedPrefix, scale: float) -> tuple:
    """The prompt part in PyTorch's fused CPU kernel, which returns its log-normaliser.

    The prompt part is the cost (every sample's queries against thousands of prompt tokens, per layer and
    token); the fused kernel never materialises its scores and was 2.7x faster than the matmuls for 24
    episodes of 8 samples over 4,000-token prompts.
    """
    import torch

    if context.prefix_bias is None:  # once per decode call, not per layer
        bias = torch.zeros(context.prefix_mask.shape, dtype=q.dtype, device=q.device)
        context.prefix_bias = bias.masked_fill(~context.prefix_mask, float("-inf"))[:, None, None, :]
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, prefix_keys, prefix_values, attn_mask=context.prefix_bias, scale=scale)[:2]
    return out, lse.unsqueeze(-1)


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
