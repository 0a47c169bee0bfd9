"""One writing process per embedded store folder.

Chroma's embedded client keeps its vector index in files that two processes writing at once can
corrupt; a Chroma server (``chroma run``) is what several writers share. So the first write from a
process takes an exclusive ``flock`` on ``<folder>/agentkd.writer.lock`` and keeps it until the
store is closed or the process ends (the kernel drops the lock of a killed process, so a crashed
run never blocks the next one). A second process that tries to write gets :class:`StoreBusy` at
once, naming the process that holds the folder; readers are never blocked. Stores of one process
share the lock, so opening one folder twice in a program still works.
"""

from __future__ import annotations

import fcntl
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from .chroma import StoreError

LOCK_NAME = "agentkd.writer.lock"

_held: dict[Path, tuple[int, int]] = {}  # folder -> (fd, number of stores in this process holding it)
_guard = threading.Lock()


class StoreBusy(StoreError):
    """Another process is writing to this embedded store folder."""


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "another process"


def acquire(folder: Path) -> Path:
    """Take (or share, within this process) the writer lock of ``folder``; :class:`StoreBusy` if taken."""
    key = folder.resolve()
    with _guard:
        if key in _held:
            fd, users = _held[key]
            _held[key] = (fd, users + 1)
            return key
        fd = os.open(key / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise StoreBusy(
                f"the store folder {key} is being written by {holder}; wait for it to finish, or let several "
                "processes write into one Chroma server instead (chroma run --path DIR --port PORT, then "
                "--store http://localhost:PORT)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} (since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC)".encode(), 0)
        _held[key] = (fd, 1)
        return key


def release(key: Path) -> None:
    """Give back one store's share of the lock; the last one closes it."""
    with _guard:
        if key not in _held:
            return
        fd, users = _held[key]
        if users > 1:
            _held[key] = (fd, users - 1)
            return
        del _held[key]
        os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor drops the flock
