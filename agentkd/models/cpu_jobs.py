"""Models on a shared CPU: say so when another agentkd process already runs one here.

PyTorch gives every process all the cores. Two processes that each run a model on the CPU
(training, an evaluation, a model teacher) then thrash instead of sharing: on 2 cores a 135M SFT
step took 30-40 s beside an evaluation and 3.4 s alone, so two jobs at once finish far later than
one after the other. Nothing in either job's output shows why.

So each process that loads a model for the CPU registers itself under
``$AGENTKD_HOME/cpu-jobs/<pid>.json`` (removed when it exits) and, when another live process is
registered there, warns with :class:`CpuContentionWarning`, naming it. A warning, not a lock: the
user may mean to run both. ``AGENTKD_CPU_JOBS=0`` turns registering and warning off; a distributed
launch (``WORLD_SIZE`` > 1), whose processes share the cores on purpose, does not register.
Registering is best effort: an unwritable cache or a garbled file never stops a run.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from agentkd.models.packaged import agentkd_home

__all__ = ["CpuContentionWarning", "CpuJob", "other_cpu_jobs", "register_cpu_job"]

_registered: Path | None = None  # this process's file, once registered


class CpuContentionWarning(UserWarning):
    """Another agentkd process runs a model on this CPU: both will run several times slower."""


@dataclass(frozen=True)
class CpuJob:
    pid: int
    command: str
    started: str | None  # the process's start time (Linux: /proc/<pid>/stat), to tell a reused pid apart


def _jobs_dir() -> Path:
    return agentkd_home() / "cpu-jobs"


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None where /proc has none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22; the name in (...) may hold spaces


def _alive(job: CpuJob) -> bool:
    try:
        os.kill(job.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        pass
    return job.started is None or _start_time(job.pid) in (None, job.started)


def other_cpu_jobs() -> list[CpuJob]:
    """Live processes other than this one that registered a model on the CPU (stale files are removed)."""
    jobs: list[CpuJob] = []
    try:
        files = sorted(_jobs_dir().glob("*.json"))
    except OSError:
        return jobs
    for file in files:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            job = CpuJob(int(data["pid"]), str(data.get("command", "")), data.get("started"))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a file being written, or not ours to judge
        if job.pid == os.getpid():
            continue
        if _alive(job):
            jobs.append(job)
        else:
            file.unlink(missing_ok=True)
    return jobs


def register_cpu_job() -> list[CpuJob]:
    """Register this process as running a model on the CPU (once) and warn about the others.

    Returns the other live jobs found (empty when turned off, already registered, or alone).
    """
    global _registered
    if _registered is not None or os.environ.get("AGENTKD_CPU_JOBS") == "0":
        return []
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        return []
    pid = os.getpid()
    record = {"pid": pid, "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:]),
              "started": _start_time(pid)}
    path = _jobs_dir() / f"{pid}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        tmp.replace(path)  # never a half-written file for the others to read
    except OSError:
        return []
    _registered = path
    atexit.register(path.unlink, missing_ok=True)
    others = other_cpu_jobs()
    if others:
        named = "; ".join(f"pid {job.pid}: {job.command[:120]}" for job in others)
        warnings.warn(
            f"another agentkd process runs a model on this CPU ({named}). PyTorch gives each process all the "
            "cores, so two at once run several times slower than one after the other (on 2 cores, 10x); let it "
            "finish first, or set AGENTKD_CPU_JOBS=0 to silence this.",
            CpuContentionWarning, stacklevel=3)
    return others
