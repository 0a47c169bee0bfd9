"""Tools for code-acting agents: sandboxed Python execution and retrieval over a corpus.

    from agentkd.tools import CodeSandbox, CorpusIndex, load_corpus
    with CodeSandbox(timeout_s=5) as box:
        box.run("x = 6 * 7\nx").value      # '42'
    index = CorpusIndex("corpora/wiki")      # a Chroma folder (or http://host:port)
    index.add(load_corpus("docs.jsonl"))
    search = index.as_tool(k=3)              # a LangChain tool named "search"

Exports load on first use, so importing this package stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .retrieval import CorpusIndex, Document, SearchHit, format_hits, load_corpus
    from .sandbox import CodeSandbox, RunResult, SandboxError, SandboxIsolationWarning

# exported name -> submodule that defines it
_EXPORTS = {
    "CodeSandbox": "sandbox",
    "RunResult": "sandbox",
    "SandboxError": "sandbox",
    "SandboxIsolationWarning": "sandbox",
    "CorpusIndex": "retrieval",
    "Document": "retrieval",
    "SearchHit": "retrieval",
    "format_hits": "retrieval",
    "load_corpus": "retrieval",
}

__all__ = ["CodeSandbox", "CorpusIndex", "Document", "RunResult", "SandboxError", "SandboxIsolationWarning",
           "SearchHit", "format_hits", "load_corpus"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
