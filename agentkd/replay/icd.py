"""In-context distillation at replay: the demonstrations live in :mod:`agentkd.distill.demos`.

Training builds its prompts with the same retriever, so it sits below both; this path is kept for callers.
"""

from agentkd.distill.demos import DemoRetriever, with_demos

__all__ = ["DemoRetriever", "with_demos"]
