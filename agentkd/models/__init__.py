"""Student models: a tiny-from-scratch factory (more loaders come later).

Importing this package is cheap; torch and transformers load when a builder is called.
"""

from agentkd.models.tiny import CHATML_TEMPLATE, MODEL_SIZES, build_tiny_model

__all__ = ["CHATML_TEMPLATE", "MODEL_SIZES", "build_tiny_model"]
