"""The QA environment's declaration to agentkd's registry (:class:`agentkd.env.EnvSpec`)."""

from __future__ import annotations

from functools import partial

import environments.qa as package  # what CodeEnv asks for: intro, expert_step, score (and tools)
from agentkd.env import EnvSpec
from environments.code_env import CodeEnv

from .generator import TEMPLATES
from .splits import SPLITS, load_split

SPEC = EnvSpec(
    name="qa",
    action_format="code",
    max_steps=8,
    max_new_tokens=192,
    task_types=tuple(TEMPLATES),
    splits=SPLITS.names,
    load_split=load_split,
    make_env=partial(CodeEnv, "qa", tasks=package),
    description="multi-hop questions answered with search() in Python code; --split also takes HotpotQA files",
)
