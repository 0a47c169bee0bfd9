"""agentkd: distil tool-using LLM agents into small students.

The whole household pipeline in Python (``examples/household_pipeline.py`` runs it)::

    import agentkd

    store = agentkd.ExperienceStore("trajectories/store")               # Chroma, embedded
    teacher = agentkd.resolve_teacher("expert", "household")           # or "openai:MODEL", a model dir
    agentkd.collect(teacher, "household", "train", 200, store)         # record trajectories
    agentkd.train_sft(store, "smollm2-135m", "runs/sft", agentkd.SFTRunConfig(max_minutes=15))
    results = agentkd.evaluate("runs/sft", agentkd.parse_configs("greedy,sc@8+constrained"),
                               store=store, max_tasks=24)
    print(results.configs[0].metrics.overall.success_rate)

Every public name below is imported on first use, so ``import agentkd`` stays instant and loads no
torch, transformers or chromadb. The names come from the modules that define them (the table
``_PUBLIC``); code inside agentkd imports those modules, never this façade.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_PUBLIC: dict[str, str] = {
    # records
    "Task": "agentkd.schema",
    "Step": "agentkd.schema",
    "Trajectory": "agentkd.schema",
    "Principle": "agentkd.schema",
    "AgentKDError": "agentkd.errors",
    # the experience store
    "ExperienceStore": "agentkd.store",
    # environments (the registry: built-ins and the `agentkd.environments` entry points) and tools
    "EnvSpec": "agentkd.env",
    "get_spec": "agentkd.envs",
    "env_names": "agentkd.envs",
    "load_tasks": "agentkd.envs",
    "make_env": "agentkd.envs",
    "CodeSandbox": "agentkd.tools.sandbox",
    # teachers and collection
    "resolve_teacher": "agentkd.collection",
    "collect": "agentkd.collection",
    # training
    "SFTRunConfig": "agentkd.train.config",
    "train_sft": "agentkd.train.sft",
    "RediRunConfig": "agentkd.train.config",
    "train_redi": "agentkd.train.redi",
    "GRPORunConfig": "agentkd.train.config",
    "train_grpo": "agentkd.train.grpo",
    "TrainingSummary": "agentkd.train.summary",
    # replay and evaluation
    "parse_configs": "agentkd.eval.run",
    "evaluate": "agentkd.eval.run",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'agentkd' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
