"""Distillation: training sets from the experience store (here) and principles (:mod:`agentkd.distill.principles`).

Importing this package is cheap: nothing heavy loads until a builder runs.
"""

from agentkd.distill.datasets import (
    DataReport,
    EmptyDatasetError,
    grpo_prompts,
    redi_pairs,
    sft_conversations,
    trajectory_messages,
)

__all__ = ["DataReport", "EmptyDatasetError", "grpo_prompts", "redi_pairs", "sft_conversations", "trajectory_messages"]
