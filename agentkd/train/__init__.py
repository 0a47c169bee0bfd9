"""Training stages on TRL and transformers: ``sft`` (stage 1), ``redi`` (stage 2), ``grpo`` (environment reward).

Import the stage you run (``from agentkd.train.sft import train_sft``); this package itself
imports nothing heavy. Every stage reads the experience store (or the environment, for GRPO),
writes a student directory that plain transformers loads, and a ``training_summary.json``.
"""
