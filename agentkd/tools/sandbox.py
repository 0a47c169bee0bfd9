"""Sandboxed Python for code-acting agents: one isolated, persistent interpreter per episode.

    from agentkd.tools import CodeSandbox
    with CodeSandbox(timeout_s=5, tools={"search": search}) as box:
        box.run("hits = search('capital of France', k=2)\\nlen(hits)").value   # '2'

The code runs in a child interpreter (standard library only) under bubblewrap or as a plain subprocess,
with per-run limits; ``fork()`` makes a copy-on-write copy. The design — isolation, limits, interruption,
forks and lifetimes, cost — is in docs/sandbox.md.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from keyword import iskeyword
from pathlib import Path
from typing import Any

from agentkd.errors import AgentKDError

from ._sandbox_child import ProtocolError, recv_msg, send_msg
from .bwrap import INSTALL_HINT, bwrap_argv, child_env, probe

__all__ = ["GRACE_S", "ISOLATIONS", "CodeSandbox", "RunResult", "SandboxError", "SandboxIsolationWarning",
           "bwrap_problem"]

ISOLATIONS = ("auto", "bwrap", "process")
GRACE_S = 1.0  # how long past its timeout a run may take to interrupt itself before its interpreter is killed
_START_TIMEOUT_S = 30.0
_REPLY_TIMEOUT_S = 10.0  # fork, tool replies: answered at once by a live interpreter
_MAX_MESSAGE = 16 << 20  # the most one message from the sandbox may carry (its own caps keep far below)
_UID_RANGE = (1_600_000_000, 1_700_000_000)  # one fresh uid per sandbox when the host is root
_MIN_MEMORY_MB = 64
_RESERVED_NAMES = {"final_answer", "ToolError"}


class SandboxError(AgentKDError, RuntimeError):
    """The caller misused a sandbox (closed, bad option), or a sandbox could not start."""


class SandboxIsolationWarning(UserWarning):
    """The sandbox runs with weaker isolation than bubblewrap gives."""


@dataclass
class RunResult:
    """What one `CodeSandbox.run` produced. ``error`` is None on success."""

    stdout: str  # print output (stdout and stderr), capped at max_output_bytes; a last line says what was dropped
    value: str | None  # repr() of the final expression statement's value (None when there is none, or it is None)
    error: str | None  # one paragraph: "NameError: name 'x' is not defined (line 2: print(x))", "TimeoutError: ..."
    answered: bool  # final_answer(...) was called; the run stopped there
    final_answer: Any  # the value given to final_answer, as JSON would carry it (its str() when not JSON-able)
    duration_s: float
    truncated: bool = False  # stdout or value was cut at max_output_bytes
    state_reset: bool = False  # the interpreter died or was killed: the next run starts with empty globals

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class _Settings:
    timeout_s: float
    cpu_s: float
    memory_mb: int
    max_output_bytes: int
    max_processes: int
    isolation: str
    python: str
    tools: Mapping[str, Callable[..., Any]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- isolation and launch


def _interpreter(python: str | None) -> str:
    path = os.path.realpath(python or sys.executable)
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise SandboxError(f"python={python!r} is not an executable interpreter")
    return path


def bwrap_problem(python: str | None = None) -> str | None:
    """None when ``isolation="bwrap"`` works here (for this interpreter), else why not. Probed once per process."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    return probe(bwrap, _interpreter(python))


def _resolve_isolation(isolation: str, python: str) -> str:
    if isolation not in ISOLATIONS:
        raise SandboxError(f"isolation={isolation!r}: choose one of {', '.join(map(repr, ISOLATIONS))}")
    if isolation == "process":
        return "process"
    problem = bwrap_problem(python)
    if problem is None:
        return "bwrap"
    if isolation == "bwrap":
        raise SandboxError(f"isolation='bwrap' but {problem}; {INSTALL_HINT}, or pass isolation='process' "
                           "for the weaker plain-subprocess sandbox")
    warnings.warn(f"{problem}, so CodeSandbox falls back to isolation='process': the code runs in a plain "
                  "subprocess with resource limits but no namespaces, so it can read the host's files and reach "
                  f"the network. For proper isolation {INSTALL_HINT}; pass isolation='process' to choose the "
                  "weaker mode explicitly.", SandboxIsolationWarning, stacklevel=3)
    return "process"


@cache
def _child_source() -> str:
    return Path(__file__).with_name("_sandbox_child.py").read_text()


@cache
def _spawner() -> ThreadPoolExecutor:
    # PR_SET_PDEATHSIG (bwrap's --die-with-parent, the process-mode supervisor's) fires when the *thread* that
    # forked the process exits, not the process: a sandbox made in a short-lived thread would die with it. So all
    # sandboxes are started from this one long-lived thread.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentkd-sandbox-spawner")


def _send(sock: socket.socket, msg: dict, timeout: float) -> None:
    sock.settimeout(max(timeout, 0.001))
    send_msg(sock, msg)


def _recv(sock: socket.socket, timeout: float) -> tuple[dict | None, list[int]]:
    if timeout <= 0:
        raise TimeoutError("deadline passed")
    sock.settimeout(timeout)
    return recv_msg(sock, _MAX_MESSAGE)


def _host_pid(pidfd: int) -> int | None:
    """The host's pid of the process behind a pidfd; None once it has been reaped (or if unknown)."""
    try:
        with open(f"/proc/self/fdinfo/{pidfd}") as f:
            for line in f:
                if line.startswith("Pid:"):
                    pid = int(line.split()[1])
                    return pid if pid > 0 else None
    except (OSError, ValueError):
        pass
    return None


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session `sid` (the process-mode family), until none is left."""
    for _ in range(100):
        try:
            names = [n for n in os.listdir("/proc") if n.isdigit()]
        except OSError:  # no /proc (not Linux): the process group is the best we can do
            try:
                os.killpg(sid, signal.SIGKILL)
            except OSError:
                pass
            return
        alive = []
        for name in names:
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[3] == str(sid) and fields[0] != "Z":
                alive.append(int(name))
        if not alive:
            return
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.005)


def _shutdown_family(mode: str, proc: subprocess.Popen, ctl: socket.socket, workdir: str | None) -> None:
    # Closing the control socket ends the supervisor: under bwrap it is PID 1, so the kernel kills every process of
    # the namespace and bwrap exits once they are gone; in process mode it first kills its own uid's processes.
    ctl.close()
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if mode == "process":
        _kill_session(proc.pid)  # whatever is left (all of it when the family runs as root)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)


class _Family:
    """The processes of one sandbox: the supervisor and every interpreter forked from the first. It lives while
    any handle on one of its interpreters (the original or a fork) is open."""

    def __init__(self, mode: str, proc: subprocess.Popen, ctl: socket.socket, workdir: str | None) -> None:
        self._handles = 0
        self._lock = threading.Lock()
        self.shutdown = weakref.finalize(self, _shutdown_family, mode, proc, ctl, workdir)  # also at exit

    def attach(self) -> None:
        with self._lock:
            self._handles += 1

    def detach(self) -> bool:
        """Drop one handle; True when it was the last."""
        with self._lock:
            self._handles -= 1
            return self._handles <= 0


class _Worker:
    """The host's end of one interpreter process: its socket and, where the kernel has them, its pidfd."""

    def __init__(self, sock: socket.socket, pid: int, pidfd: int | None, mode: str) -> None:
        self.sock, self.pid, self.pidfd, self.mode = sock, pid, pidfd, mode

    def kill(self) -> None:
        # The interpreter leads its own process group, so its group id is its pid as the host sees it.
        if self.pidfd is not None:
            pgid = _host_pid(self.pidfd)
        else:
            pgid = self.pid if self.mode == "process" else None
        if pgid is not None:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        if self.pidfd is not None:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def _launch(settings: _Settings) -> tuple[_Family, _Worker, dict]:
    """Start a sandbox's supervisor and first interpreter; returns them and the interpreter's hello."""
    ctl_host, ctl_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock, sock_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    mode = settings.isolation
    workdir = None if mode == "bwrap" else tempfile.mkdtemp(prefix="agentkd-sandbox-")
    home = workdir or "/tmp"
    cfg = {"ctl_fd": ctl_child.fileno(), "worker_fd": sock_child.fileno(), "mode": mode, "home": home,
           "uid": secrets.randbelow(_UID_RANGE[1] - _UID_RANGE[0]) + _UID_RANGE[0] if os.geteuid() == 0 else None,
           "host_pid": os.getpid(), "memory_mb": settings.memory_mb, "max_processes": settings.max_processes,
           "max_output_bytes": settings.max_output_bytes, "cpu_s": settings.cpu_s,
           "tools": {name: (getattr(fn, "__doc__", None) or "")[:2000] for name, fn in settings.tools.items()}}
    command = [settings.python, "-I", "-S", "-B", "-c", _child_source(), json.dumps(cfg)]
    if mode == "bwrap":
        argv, env = bwrap_argv(shutil.which("bwrap") or "bwrap", settings.python, settings.memory_mb << 20), None
    else:
        argv, env = [], child_env(home)
    with tempfile.TemporaryFile() as errors:
        try:
            proc = _spawner().submit(subprocess.Popen, argv + command, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=errors,
                                     pass_fds=(ctl_child.fileno(), sock_child.fileno()), start_new_session=True,
                                     cwd=workdir or "/", env=env).result()
        except OSError as exc:
            for s in (ctl_host, sock):
                s.close()
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            raise SandboxError(f"could not start the sandbox ({(argv + command)[0]}): {exc}") from exc
        finally:
            ctl_child.close()
            sock_child.close()
        family = _Family(mode, proc, ctl_host, workdir)
        try:
            hello, fds = _recv(sock, _START_TIMEOUT_S)
        except (OSError, ProtocolError):
            hello, fds = None, []
        if hello is None or hello.get("op") != "ready":
            sock.close()
            family.shutdown()
            errors.seek(0)
            detail = errors.read()[-3000:].decode(errors="replace").strip() or f"exit status {proc.returncode}"
            raise SandboxError(f"the {mode} sandbox did not start: {detail}")
    return family, _Worker(sock, hello["pid"], fds[0] if fds else None, mode), hello


# ---------------------------------------------------------------------------------------------------- the sandbox


class CodeSandbox:
    """One isolated, persistent Python interpreter (see docs/sandbox.md for isolation, limits and forks).

    timeout_s: wall-clock seconds per run, tool calls included.
    cpu_s: CPU seconds per run (None: the same as timeout_s).
    memory_mb: address-space limit of each process of the sandbox (at least 64).
    max_output_bytes: how much print output (and value repr) a run keeps.
    tools: host-side functions callable by name from the code; arguments and results travel as JSON, and a
        tool's exception is raised in the code as ``ToolError("name() failed: Type: message")``.
    isolation: "auto", "bwrap" or "process"; the attribute holds the mode in use.
    max_processes: processes and threads the sandbox may run at once (its interpreters and forks included).
    python: the interpreter to run the code with (default: the host's own, outside any venv).

    Example::

        with CodeSandbox(timeout_s=5, tools={"search": lambda q: corpus.search(q)}) as box:
            box.run("x = 6 * 7")
            box.run("print(x, search('capital of France'))").stdout
    """

    def __init__(self, *, timeout_s: float = 10.0, cpu_s: float | None = None, memory_mb: int = 512,
                 max_output_bytes: int = 65536, tools: Mapping[str, Callable[..., Any]] | None = None,
                 isolation: str = "auto", max_processes: int = 64, python: str | None = None) -> None:
        self._closed = True  # until started, so that __del__ of a half-built sandbox does nothing
        if not timeout_s > 0 or (cpu_s is not None and not cpu_s > 0):
            raise SandboxError(f"timeout_s and cpu_s must be positive, got {timeout_s!r} and {cpu_s!r}")
        if memory_mb < _MIN_MEMORY_MB:
            raise SandboxError(f"memory_mb={memory_mb}: the interpreter needs at least {_MIN_MEMORY_MB} MB")
        if max_output_bytes < 1 or max_processes < 2:
            raise SandboxError("max_output_bytes must be at least 1 and max_processes at least 2 (supervisor and "
                               "interpreter)")
        tools = dict(tools or {})
        for name, fn in tools.items():
            if not isinstance(name, str) or not name.isidentifier() or iskeyword(name) or name in _RESERVED_NAMES:
                raise SandboxError(f"tool name {name!r} is not usable in Python code (or is reserved)")
            if not callable(fn):
                raise SandboxError(f"tool {name!r} is not callable")
        python = _interpreter(python)
        self._settings = _Settings(float(timeout_s), float(cpu_s or timeout_s), int(memory_mb), int(max_output_bytes),
                                   int(max_processes), _resolve_isolation(isolation, python), python, tools)
        self._family: _Family | None = None
        self._worker: _Worker | None = None
        self.uid: int | None = None  # the uid the code runs as, as the host sees it
        self._closed = False
        self._start()
        if self.isolation == "process" and self.runs_as_root:
            warnings.warn(f"isolation='process' runs the code as root here: an unprivileged uid cannot use the "
                          f"interpreter {python}, so the code can read, change and kill anything root can, and "
                          f"max_processes is not enforced. {INSTALL_HINT[0].upper() + INSTALL_HINT[1:]}, run "
                          "the host as an unprivileged user, or pass python= an interpreter outside root's home "
                          "(e.g. /usr/bin/python3).", SandboxIsolationWarning, stacklevel=2)

    # -- read-only settings

    @property
    def isolation(self) -> str:
        return self._settings.isolation

    @property
    def timeout_s(self) -> float:
        return self._settings.timeout_s

    @property
    def cpu_s(self) -> float:
        return self._settings.cpu_s

    @property
    def memory_mb(self) -> int:
        return self._settings.memory_mb

    @property
    def max_output_bytes(self) -> int:
        return self._settings.max_output_bytes

    @property
    def max_processes(self) -> int:
        return self._settings.max_processes

    @property
    def tools(self) -> Mapping[str, Callable[..., Any]]:
        return self._settings.tools

    @property
    def runs_as_root(self) -> bool:
        return self.uid == 0

    @property
    def closed(self) -> bool:
        return self._closed

    # -- life cycle

    def _start(self) -> None:
        family, worker, hello = _launch(self._settings)
        family.attach()
        self._family, self._worker, self.uid = family, worker, int(hello["uid"])

    def _drop_worker(self) -> None:
        """Kill this handle's interpreter (its whole family if no other handle needs it)."""
        worker, family = self._worker, self._family
        self._worker = self._family = None
        if family is not None and family.detach():
            family.shutdown()
        elif worker is not None:
            worker.kill()
        if worker is not None:
            worker.close()

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError("this CodeSandbox is closed; create a new one (or fork an open one)")

    def close(self) -> None:
        """Kill the interpreter and everything it started; the sandbox goes when its last handle closes.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._drop_worker()

    def __enter__(self) -> CodeSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - best effort at garbage collection / interpreter exit
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"uid={self.uid}"
        return f"CodeSandbox(isolation={self.isolation!r}, timeout_s={self.timeout_s:g}, {state})"

    # -- running code

    def run(self, code: str) -> RunResult:
        """Run `code` in the interpreter; never raises for what the code does (see RunResult.error)."""
        self._check_open()
        if not isinstance(code, str):
            raise SandboxError(f"run() takes the code as a str, not {type(code).__name__}")
        if self._worker is None:  # the last run crashed or was killed
            self._start()
        started = time.perf_counter()
        try:
            return self._exchange(code, started)
        except BaseException:  # e.g. KeyboardInterrupt in a tool: the channel is out of step now
            self._drop_worker()
            raise

    def _exchange(self, code: str, started: float) -> RunResult:
        settings, worker = self._settings, self._worker
        assert worker is not None
        deadline = started + settings.timeout_s + GRACE_S
        try:
            _send(worker.sock, {"op": "run", "code": code, "timeout_s": settings.timeout_s, "cpu_s": settings.cpu_s},
                  deadline - time.perf_counter())
            while True:
                msg, fds = _recv(worker.sock, deadline - time.perf_counter())
                for fd in fds:
                    os.close(fd)
                if msg is None:
                    return self._lost(started, "died while running the code (it exited, crashed or was killed)")
                if msg.get("op") == "tool":
                    reply = self._call_tool(msg)
                    deadline = max(deadline, time.perf_counter() + GRACE_S)  # the code sees the timeout first
                    _send(worker.sock, reply, _REPLY_TIMEOUT_S)
                elif msg.get("op") == "result":
                    return RunResult(stdout=str(msg.get("stdout", "")), value=msg.get("value"),
                                     error=msg.get("error"), answered=bool(msg.get("answered")),
                                     final_answer=msg.get("final_answer"),
                                     duration_s=time.perf_counter() - started, truncated=bool(msg.get("truncated")))
                else:
                    raise ProtocolError(f"unexpected message {msg.get('op')!r}")
        except TimeoutError:
            return self._lost(started, f"ran longer than {settings.timeout_s:g} s wall-clock and did not stop when "
                                       "interrupted, so it was killed", kind="TimeoutError: the code")
        except (OSError, ProtocolError) as exc:
            return self._lost(started, f"broke its connection to the host ({exc})")

    def _lost(self, started: float, what: str, kind: str = "SandboxCrashed: the interpreter") -> RunResult:
        self._drop_worker()
        error = f"{kind} {what}; the next run starts a fresh interpreter, so earlier variables and imports are gone"
        return RunResult(stdout="", value=None, error=error, answered=False, final_answer=None,
                         duration_s=time.perf_counter() - started, state_reset=True)

    def _call_tool(self, msg: dict) -> dict:
        name = msg.get("name")
        fn = self._settings.tools.get(name) if isinstance(name, str) else None
        if fn is None:
            return {"op": "tool_result", "ok": False, "error": f"NameError: there is no tool named {name!r}"}
        try:
            value = fn(*msg.get("args", []), **msg.get("kwargs", {}))
        except Exception as exc:  # noqa: BLE001 - a failing tool is an observation for the code, not a host error
            return {"op": "tool_result", "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            return {"op": "tool_result", "ok": False,
                    "error": f"TypeError: the tool returned a value that is not JSON-serialisable ({exc})"}
        return {"op": "tool_result", "ok": True, "value": value}

    def fork(self) -> CodeSandbox:
        """An independent copy of this interpreter (globals, imported modules) in its own process."""
        self._check_open()
        if self._worker is None:
            self._start()
        worker = self._worker
        assert worker is not None and self._family is not None
        fds: list[int] = []
        try:
            _send(worker.sock, {"op": "fork"}, _REPLY_TIMEOUT_S)
            msg, fds = _recv(worker.sock, _REPLY_TIMEOUT_S)
        except (OSError, ProtocolError) as exc:
            msg, fds = None, []
            reason = str(exc)
        else:
            reason = "it died"
        if msg is not None and msg.get("op") == "fork_failed":  # the interpreter is fine; the copy could not be made
            raise SandboxError(f"fork failed: {msg.get('error')} (max_processes={self.max_processes})")
        if msg is None or msg.get("op") != "forked" or not fds:
            for fd in fds:
                os.close(fd)
            self._drop_worker()
            raise SandboxError(f"fork failed: the interpreter did not answer ({reason}); the next run of this "
                               "sandbox starts a fresh interpreter")
        copy = CodeSandbox.__new__(CodeSandbox)
        copy._settings, copy.uid, copy._family = self._settings, self.uid, self._family
        copy._worker = _Worker(socket.socket(fileno=fds[0]), int(msg["pid"]), fds[1] if len(fds) > 1 else None,
                               self.isolation)
        self._family.attach()
        copy._closed = False
        return copy
