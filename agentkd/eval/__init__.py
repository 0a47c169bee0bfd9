"""Evaluation: metrics over evaluated episodes, ``results.json``, and the markdown + PNG report.

* :mod:`agentkd.eval.metrics` — :func:`summarize`, :class:`ConfigResult`, :class:`EvalResults`;
* :mod:`agentkd.eval.report` — :func:`write_report`, :func:`format_table` (matplotlib loads on
  first plot).

Names are resolved on first access, so importing this package loads nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConfigResult": "agentkd.eval.metrics",
    "EpisodeRow": "agentkd.eval.metrics",
    "EvalResults": "agentkd.eval.metrics",
    "GroupMetrics": "agentkd.eval.metrics",
    "Metrics": "agentkd.eval.metrics",
    "ResultsFileError": "agentkd.eval.metrics",
    "summarize": "agentkd.eval.metrics",
    "format_table": "agentkd.eval.report",
    "write_report": "agentkd.eval.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
