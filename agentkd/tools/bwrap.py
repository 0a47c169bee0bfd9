"""The bubblewrap command line that isolates :class:`~agentkd.tools.sandbox.CodeSandbox` (see docs/sandbox.md):
new PID, network, IPC, UTS and mount namespaces, a read-only view of the interpreter's installation and a
size-capped private /tmp; and the probe that tells whether bubblewrap works on this host."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path

INSTALL_HINT = "install bubblewrap (apt-get install bubblewrap, dnf install bubblewrap or pacman -S bubblewrap)"
_PATH = "/usr/local/bin:/usr/bin:/bin"


@cache
def python_roots(python: str) -> tuple[str, ...]:
    """Directories the interpreter needs (its installation), outside /usr."""
    if python == os.path.realpath(sys.executable):
        prefixes = [sys.base_prefix, sys.base_exec_prefix]
    else:
        query = "import sys; print(sys.base_prefix); print(sys.base_exec_prefix)"
        out = subprocess.run([python, "-I", "-S", "-c", query], capture_output=True, text=True, timeout=30)
        prefixes = out.stdout.split()
    roots: list[str] = []
    for path in sorted({os.path.realpath(p) for p in [*prefixes, os.path.dirname(python)]}):
        if path == "/usr" or path.startswith("/usr/") or any(path.startswith(r + "/") for r in roots):
            continue
        roots.append(path)
    return tuple(roots)


@cache
def _bwrap_help(bwrap: str) -> str:
    return subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=30).stdout


def bwrap_argv(bwrap: str, python: str, tmpfs_bytes: int) -> list[str]:
    options = _bwrap_help(bwrap)
    perms = "--perms" in options
    argv = [bwrap, "--die-with-parent", "--new-session", "--as-pid-1", "--clearenv", "--unshare-ipc",
            "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    if os.geteuid() == 0:
        # Privileged, without a user namespace: uid 0 inside one still counts as root for RLIMIT_NPROC. The
        # supervisor keeps only what it needs to hand /tmp to the sandbox's uid and switch to it.
        argv += ["--cap-drop", "ALL"]
        for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN"):
            argv += ["--cap-add", cap]
    else:
        argv += ["--unshare-user"] + (["--disable-userns"] if "--disable-userns" in options else [])
    argv += ["--ro-bind", "/usr", "/usr"]
    for path in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    argv += (["--perms", "0755"] if perms else []) + ["--dir", "/etc"]
    for path in ("/etc/ld.so.cache", "/etc/localtime"):
        argv += ["--ro-bind-try", path, path]
    made = {"/", "/etc"}
    for root in python_roots(python):
        for parent in reversed(Path(root).parents):  # e.g. /root is 0700 on the host: make a traversable one
            if str(parent) not in made:
                argv += (["--perms", "0755"] if perms else []) + ["--dir", str(parent)]
                made.add(str(parent))
        argv += ["--ro-bind", root, root]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    if "--size" in options:
        argv += ["--size", str(tmpfs_bytes)]
    argv += (["--perms", "0700"] if perms else []) + ["--tmpfs", "/tmp", "--chdir", "/tmp"]
    # In a user namespace the sandbox owns bwrap's own tmpfs root and /dev: make them read-only (unbounded
    # memory otherwise), leaving the size-capped /tmp the only writable place.
    argv += ["--remount-ro", "/dev", "--remount-ro", "/"]
    for name, value in child_env("/tmp").items():
        argv += ["--setenv", name, value]
    return argv


def child_env(home: str) -> dict[str, str]:
    # MALLOC_ARENA_MAX: glibc reserves 64 MB of address space per thread arena, which RLIMIT_AS would count.
    return {"HOME": home, "TMPDIR": home, "PATH": _PATH, "LANG": "C.UTF-8", "MALLOC_ARENA_MAX": "2"}


@cache
def probe(bwrap: str, python: str) -> str | None:
    argv = bwrap_argv(bwrap, python, 16 << 20) + [python, "-I", "-S", "-c", "pass"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap ({bwrap}) could not start a sandbox: {exc}"
    if done.returncode != 0:
        return f"bubblewrap ({bwrap}) could not start a sandbox: {done.stderr.strip() or done.returncode}"
    return None
