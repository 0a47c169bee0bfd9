"""The root of agentkd's own errors: ``except AgentKDError`` catches every error agentkd raises on purpose.

Each error class also keeps its standard base (``ValueError``, ``RuntimeError``), so code that catches
those still catches it.
"""

from __future__ import annotations

__all__ = ["AgentKDError"]


class AgentKDError(Exception):
    """An error agentkd raises on purpose: bad input, a missing model or store, a failed sandbox."""
