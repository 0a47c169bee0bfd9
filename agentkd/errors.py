"""The root of agentkd's own errors: ``except AgentKDError`` catches every error agentkd raises on purpose.

Each error class also keeps its standard base (``ValueError``, ``RuntimeError``), so code that catches
those still catches it.
"""

from __future__ import annotations

__all__ = ["AgentKDError", "ConfigError", "EmptyDatasetError", "FileFormatError"]


class AgentKDError(Exception):
    """An error agentkd raises on purpose: bad input, a missing model or store, a failed sandbox."""


class ConfigError(AgentKDError, ValueError):
    """A setting or argument agentkd cannot use (an unknown mode, a model that cannot be trained this way)."""


class EmptyDatasetError(AgentKDError, ValueError):
    """The store holds nothing this step can use; the message says what is missing and how to get it."""


class FileFormatError(AgentKDError, ValueError):
    """A file (or one line of it) that is not what agentkd expected: the message is ``FILE:LINE: PROBLEM``.

    ``line`` is None where the problem is the whole file (missing, unreadable, empty).
    """

    def __init__(self, path: object, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem
