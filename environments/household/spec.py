"""The household environment's declaration to agentkd's registry (:class:`agentkd.env.EnvSpec`)."""

from __future__ import annotations

from agentkd.env import EnvSpec

from .env import HouseholdEnv
from .splits import SPLITS, load_split
from .vocab import TASK_TYPES

SPEC = EnvSpec(
    name="household",
    action_format="text",
    max_steps=20,
    max_new_tokens=96,
    task_types=TASK_TYPES,
    splits=SPLITS.names,
    load_split=load_split,
    make_env=HouseholdEnv,
    description="ALFWorld-style household tasks (text commands); --split also takes a folder of ALFWorld games",
)
