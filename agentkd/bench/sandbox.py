"""Sandbox benchmark: what one code step costs in each isolation mode, measured side by side.

    from agentkd.bench.sandbox import bench_sandbox
    bench_sandbox(runs=50)
    # {"runs": 50, "isolation": {"bwrap": {"start_ms": ..., "run_ms": ..., "fork_ms": ..., "close_ms": ...},
    #                            "process": {...}},
    #  "ratios": {"start": bwrap/process, "run": ..., "fork": ...}, "unavailable": {}}

- ``start_ms``: constructing a `CodeSandbox` until its interpreter answers (bwrap: the namespaces, mounts and
  a fresh interpreter);
- ``run_ms``: one ``run`` of trivial code on a warm interpreter (the round trip a code step pays at least);
- ``fork_ms``: one ``fork()`` until the copy is ready to run code;
- ``close_ms``: closing a sandbox with one interpreter (the whole family goes).

Medians, so that one slow start (page cache, scheduling on a small machine) does not skew a figure. Modes that
cannot run here (bwrap not installed or not permitted) are listed under ``unavailable`` with the reason.
"""

from __future__ import annotations

import statistics
import time
import warnings
from typing import Any

__all__ = ["bench_sandbox"]


def _ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def _bench_mode(isolation: str, runs: int) -> dict[str, float]:
    from agentkd.tools.sandbox import CodeSandbox

    starts, closes = [], []
    for _ in range(max(3, runs // 10)):
        began = time.perf_counter()
        box = CodeSandbox(isolation=isolation)
        starts.append(time.perf_counter() - began)
        box.run("pass")
        began = time.perf_counter()
        box.close()
        closes.append(time.perf_counter() - began)
    with CodeSandbox(isolation=isolation) as box:
        box.run("import json, math\nx = 1")
        for _ in range(5):  # warm-up
            box.run("x + 1")
        steps = []
        for _ in range(runs):
            began = time.perf_counter()
            box.run("x + 1")
            steps.append(time.perf_counter() - began)
        forks = []
        for _ in range(runs):
            began = time.perf_counter()
            copy = box.fork()
            forks.append(time.perf_counter() - began)
            copy.close()
    return {"start_ms": _ms(starts), "run_ms": _ms(steps), "fork_ms": _ms(forks), "close_ms": _ms(closes)}


def bench_sandbox(runs: int = 50) -> dict[str, Any]:
    """Milliseconds per start, run, fork and close for every isolation mode that works here."""
    from agentkd.tools.sandbox import SandboxIsolationWarning, bwrap_problem

    modes, unavailable = ["process"], {}
    problem = bwrap_problem()
    if problem is None:
        modes.insert(0, "bwrap")
    else:
        unavailable["bwrap"] = problem
    figures = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SandboxIsolationWarning)  # process mode as root says so; not news here
        for mode in modes:
            figures[mode] = _bench_mode(mode, runs)
    result: dict[str, Any] = {"runs": runs, "isolation": figures, "unavailable": unavailable}
    if "bwrap" in figures:
        bwrap, process = figures["bwrap"], figures["process"]
        result["ratios"] = {key: round(bwrap[f"{key}_ms"] / process[f"{key}_ms"], 2)
                            for key in ("start", "run", "fork", "close")}
    return result
