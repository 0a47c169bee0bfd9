"""The spool: trajectories an upsert could not write while the Chroma server was unreachable.

:func:`spool` appends them to ``{spool_dir}/{prefix}.jsonl``; :func:`import_spool` writes them
back once a store opens again. Several recorders may append to one spool and several stores may
import it at once: a file is claimed (renamed) before it is imported and given back on failure.

Importing this module does not import chromadb.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from agentkd.schema import Trajectory

from .chroma import chunks
from .records import IMPORT_CHUNK

__all__ = ["import_spool", "spool"]


def spool(spool_file: Path, batch: list[Trajectory]) -> None:
    """Append trajectories to the spool file (one JSON per line)."""
    spool_file.parent.mkdir(parents=True, exist_ok=True)
    _append_bytes(spool_file, "".join(traj.to_json() + "\n" for traj in batch).encode("utf-8"))


def import_spool(spool_file: Path, write: Callable[[list[Trajectory]], None]) -> int:
    """Write the spooled trajectories with ``write``; returns how many were imported.

    Claims the spool file and the claims of importers that died (see ``ExperienceStore.import_spool``).
    """
    spool_dir = spool_file.parent
    if not spool_dir.is_dir():
        return 0
    claims = [path for path in spool_dir.glob(f"{spool_file.name}.importing-*") if _claim_is_stale(path)]
    if spool_file.exists():
        claim = spool_file.with_name(f"{spool_file.name}.importing-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            os.replace(spool_file, claim)
            claims.append(claim)
        except FileNotFoundError:  # another process claimed it first
            pass
    imported = 0
    for claim in claims:
        try:
            imported += _import_claim(claim, spool_file, write)
        except BaseException:
            _append_file(claim, spool_file)  # give the lines back for the next try
            claim.unlink(missing_ok=True)
            raise
        claim.unlink(missing_ok=True)
    return imported


def _import_claim(claim: Path, spool_file: Path, write: Callable[[list[Trajectory]], None]) -> int:
    good: list[Trajectory] = []
    rejected: list[str] = []
    with claim.open("r", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                good.append(Trajectory.from_json(line))
            except (ValidationError, ValueError):
                rejected.append(line if line.endswith("\n") else line + "\n")
    if rejected:
        rejected_file = spool_file.with_name(f"{spool_file.name}.rejected")
        with rejected_file.open("a", encoding="utf-8") as handle:
            handle.writelines(rejected)
        # stacklevel: this function, import_spool, ExperienceStore.import_spool, its caller
        warnings.warn(f"{len(rejected)} unreadable spool line(s) moved to {rejected_file}", stacklevel=4)
    for chunk in chunks(good, IMPORT_CHUNK):
        write(list({traj.trajectory_id: traj for traj in chunk}.values()))
    return len(good)


def _claim_is_stale(path: Path) -> bool:
    """A claimed spool file whose importing process is gone (killed mid-import)."""
    try:
        pid = int(path.name.rsplit(".importing-", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _append_bytes(target: Path, data: bytes) -> None:
    """Append with O_APPEND and fsync: concurrent recorders do not interleave their lines."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _append_file(source: Path, target: Path) -> None:
    if source.exists():
        _append_bytes(target, source.read_bytes())
