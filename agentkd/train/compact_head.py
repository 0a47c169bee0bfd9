"""The LM head over the trained positions only, on CPU: where TRL's SFT loses most of its time there.

TRL's ``SFTTrainer`` computes the loss through a fused, tiled LM head (``add_fused_lm_head``). On
devices without Triton it scores *every* position — prompt, observations and padding included —
and computes entropy and top-1 over the 49k-token vocabulary at each one; with assistant-only loss
about a third of the positions carry a label. Profiled on 2 CPU cores with SmolLM2-135M, the head
took ~45% of a training step. :func:`compact_lm_head` re-patches the model so that, with
``fused_lm_head=True``, only labelled positions go through the head (the same outputs, the same
loss); the original forward serves everything else. GPUs keep TRL's kernel, which is compact there.

:func:`labelled_logps` is the same idea for losses agentkd computes itself (REDI): the log-probability
of each labelled token, through the head at those positions only, so a batch never holds
``positions x vocabulary`` float32 logits (for REDI's 8 sequences of up to 2,048 tokens, 3.2 GB a copy).
"""

from __future__ import annotations

import types
from typing import Any

__all__ = ["compact_lm_head", "labelled_logps"]


def _scaled(model: Any) -> bool:
    """Whether the head's logits are scaled or soft-capped (or come with MoE losses): then only the model's own
    forward computes them right."""
    text = model.config.get_text_config()
    return any(getattr(text, name, None) not in (None, 1.0) for name in (
        "final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling",
    )) or bool(getattr(text, "output_router_logits", False))


def labelled_logps(model: Any, input_ids: Any, attention_mask: Any, labelled: Any) -> Any:
    """``log π(token t+1 | tokens ≤ t)`` at every position where ``labelled`` (batch, length) is set for token t+1,
    as a (batch, length - 1) tensor, zero elsewhere.

    A plain transformers model runs its body once and its head at the labelled positions only; anything else
    (a PEFT or DDP wrapper, scaled logits) goes through its own forward and the full logits.
    """
    import torch
    from transformers import PreTrainedModel

    targets = input_ids[:, 1:]
    mask = labelled[:, 1:].bool()
    prefix = getattr(model, "base_model_prefix", "model")
    if isinstance(model, PreTrainedModel) and hasattr(model, prefix) and not _scaled(model):
        hidden = getattr(model, prefix)(input_ids=input_ids, attention_mask=attention_mask,
                                        use_cache=False).last_hidden_state[:, :-1]
        logits = model.get_output_embeddings()(hidden[mask]).float()  # (labelled tokens, vocab)
        picked = logits.gather(1, targets[mask].unsqueeze(1)).squeeze(1) - torch.logsumexp(logits, dim=-1)
        return picked.new_zeros(mask.shape).masked_scatter(mask, picked)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, :-1].float()
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return picked * mask


def compact_lm_head(model: Any) -> bool:
    """Patch ``model`` (already given TRL's fused head) to score labelled positions only; True if patched."""
    import torch
    import torch.nn.functional as F
    from trl.trainer.utils import FusedCausalLMOutput

    fused_forward = model.forward
    prefix = getattr(model, "base_model_prefix", "model")
    if not hasattr(model, prefix) or _scaled(model):
        return False  # scaled or soft-capped logits, MoE auxiliary losses: TRL's head handles them

    def forward(self: Any, *args: Any, fused_lm_head: bool = False, labels: Any = None, shift_labels: Any = None,
                num_items_in_batch: Any = None, **kwargs: Any) -> Any:
        if not fused_lm_head or labels is None or shift_labels is not None:
            return fused_forward(*args, fused_lm_head=fused_lm_head, labels=labels, shift_labels=shift_labels,
                                 num_items_in_batch=num_items_in_batch, **kwargs)
        kwargs["use_cache"] = False
        hidden = getattr(self, prefix)(*args, **kwargs).last_hidden_state[:, :-1]
        labels = labels[:, 1:]
        mask = labels != -100
        target = labels[mask]
        logits = self.get_output_embeddings()(hidden[mask]).float()  # (labelled tokens, vocab)
        log_probs = F.log_softmax(logits, dim=-1)
        picked = log_probs.gather(1, target.unsqueeze(1)).squeeze(1)
        with torch.no_grad():  # metrics only
            entropy = -(log_probs.exp() * log_probs).sum(-1)
            is_top1 = (logits.argmax(-1) == target).to(picked.dtype)
        denominator = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        loss = -picked.sum() / denominator

        def spread(x: Any) -> Any:  # back to (batch, positions), zero where there is no label
            return x.new_zeros(mask.shape).masked_scatter(mask, x)

        return FusedCausalLMOutput(loss=loss, log_probs=spread(picked), entropy=spread(entropy),
                                   is_top1=spread(is_top1), label_mask=mask)

    model.forward = types.MethodType(forward, model)
    return True
