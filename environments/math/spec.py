"""The math environment's declaration to agentkd's registry (:class:`agentkd.env.EnvSpec`)."""

from __future__ import annotations

from functools import partial

import environments.math as package  # what CodeEnv asks for: intro, expert_step, score (and tools)
from agentkd.env import EnvSpec
from environments.code_env import CodeEnv

from .gsm8k import TASK_TYPE
from .splits import SPLITS, load_split
from .templates import TASK_TYPES

SPEC = EnvSpec(
    name="math",
    action_format="code",
    max_steps=6,
    max_new_tokens=256,
    task_types=TASK_TYPES,
    splits=SPLITS.names,
    load_split=load_split,
    make_env=partial(CodeEnv, "math", tasks=package),
    description=f"math problems solved in Python code; --split also takes a GSM8K-style .jsonl ({TASK_TYPE})",
)
