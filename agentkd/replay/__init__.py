"""Replaying students: a batched generation engine with per-episode prefix caches, self-consistent
action generation, in-context distillation and a cascade to the teacher.

Importing this package is cheap; torch and transformers load when an engine is built.
"""
