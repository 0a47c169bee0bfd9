"""The chat template students are trained and replayed with: ChatML, with the assistant's part marked.

TRL's assistant-only loss needs ``{% generation %}`` markers around what the assistant writes
(``return_assistant_tokens_mask``). Few ChatML models' own templates have them (SmolLM2's does not),
so :func:`ensure_generation_template` gives such tokenizers :data:`CHATML_TEMPLATE`. Assistant turns
marked ``"train": False`` (a teacher's deliberate mistakes) are rendered the same but left unmarked.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["CHATML_TEMPLATE", "ensure_generation_template", "honours_train_flags"]

#: ChatML with ``{% generation %}`` around what the assistant writes (its content and ``<|im_end|>``),
#: except in assistant turns marked ``"train": False`` (mistakes shown in the history, not learnt).
#: Kept on one line per branch: whitespace outside ``{%- -%}`` tags would leak into the prompt.
CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' and message['train'] is sameas false -%}"
    "{{- '<|im_start|>assistant\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{% generation %}{{- message['content'] + '<|im_end|>' -}}{% endgeneration %}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

def ensure_generation_template(tokenizer: Any) -> bool:
    """Give a ChatML-family tokenizer a template with ``{% generation %}`` markers; True when replaced.

    The markers are what ``return_assistant_tokens_mask`` (TRL's assistant-only loss) needs. Our
    prompts always carry a system message, so the plain ChatML template renders them exactly as a
    ChatML model's own template (SmolLM2's, Qwen's) does.
    """
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str) or "<|im_start|>" not in template or re.search(r"{%-?\s*generation\s*-?%}",
                                                                                       template):
        return False
    tokenizer.chat_template = CHATML_TEMPLATE
    return True


def honours_train_flags(tokenizer: Any) -> bool:
    """Whether the tokenizer's template leaves assistant turns marked ``"train": False`` out of the loss."""
    template = getattr(tokenizer, "chat_template", None)
    return isinstance(template, str) and "message['train'] is sameas false" in template
