"""Tools for code-acting agents: sandboxed Python execution (and, next to it, retrieval).

    from agentkd.tools import CodeSandbox
    with CodeSandbox(timeout_s=5) as box:
        box.run("x = 6 * 7\nx").value      # '42'

Exports load on first use, so importing this package stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .sandbox import CodeSandbox, RunResult, SandboxError, SandboxIsolationWarning

# exported name -> submodule that defines it
_EXPORTS = {
    "CodeSandbox": "sandbox",
    "RunResult": "sandbox",
    "SandboxError": "sandbox",
    "SandboxIsolationWarning": "sandbox",
}

__all__ = ["CodeSandbox", "RunResult", "SandboxError", "SandboxIsolationWarning"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
