"""The sandbox's child side: a supervisor process and the interpreters it serves. Standard library only.

The host runs this file's source as ``python -I -S -B -c SOURCE CONFIG`` (inside bubblewrap or as a plain
subprocess); nothing else of agentkd is importable there. The host also imports it, for the wire format.

Processes inside one sandbox ("family"):

- the **supervisor** (PID 1 of the sandbox's PID namespace under bwrap, a child subreaper otherwise) drops root
  privileges, sets the resource limits, forks the first worker, then only reaps children and waits for the host to
  close its control socket; when it exits, the whole family goes (PID namespace teardown, or ``kill(-1)`` as the
  family's own uid);
- **workers**: one per `CodeSandbox` handle. A worker runs user code in a persistent namespace and talks to the
  host over its own SOCK_SEQPACKET socket. ``fork`` is an ``os.fork()`` of a worker (copy-on-write), which hands the
  host one end of a fresh socketpair and a pidfd of the new process over the existing socket.

Wire format: one JSON object per message, sent as SEQPACKET records of at most `CHUNK` bytes, each record prefixed
with b"M" (more follows) or b"E" (end); file descriptors ride on a message's first record.
"""

from __future__ import annotations

import array
import ast
import builtins
import io
import json
import linecache
import math
import os
import resource
import signal
import socket
import sys
import traceback

CHUNK = 32 * 1024
_CLOEXEC = getattr(socket, "MSG_CMSG_CLOEXEC", 0)
_INTERRUPTS = {signal.SIGALRM, signal.SIGPROF, signal.SIGXCPU}
_FLOOD_FACTOR = 64  # a run that prints this many times max_output_bytes is stopped: none of it could be shown


class ProtocolError(Exception):
    """The peer sent something that is not a well-formed message (or one larger than allowed)."""


def send_msg(sock: socket.socket, msg: dict, fds: list[int] | tuple[int, ...] = ()) -> None:
    data = json.dumps(msg).encode()
    for start in range(0, max(len(data), 1), CHUNK):
        record = (b"E" if start + CHUNK >= len(data) else b"M") + data[start:start + CHUNK]
        if start == 0 and fds:
            sock.sendmsg([record], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        else:
            sock.sendall(record)


def recv_msg(sock: socket.socket, limit: int | None = None) -> tuple[dict | None, list[int]]:
    """One message and the fds that came with it; (None, []) when the peer closed its end."""
    parts: list[bytes] = []
    fds: list[int] = []
    size = 0
    try:
        while True:
            record, ancdata, _flags, _addr = sock.recvmsg(CHUNK + 1, socket.CMSG_SPACE(4 * 4), _CLOEXEC)
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    got = array.array("i")
                    got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
                    fds.extend(got)
            if not record:
                for fd in fds:
                    os.close(fd)
                return None, []
            size += len(record) - 1
            if limit is not None and size > limit:
                raise ProtocolError(f"message larger than {limit} bytes")
            parts.append(record[1:])
            if record[:1] == b"E":
                msg = json.loads(b"".join(parts))
                if not isinstance(msg, dict):
                    raise ProtocolError("message is not a JSON object")
                return msg, fds
    except (ProtocolError, ValueError) as exc:
        for fd in fds:
            os.close(fd)
        raise ProtocolError(str(exc)) from exc
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux, or a kernel older than 5.3: the host falls back to the pid
        return None


# ---------------------------------------------------------------------------------------------------- the worker


class _Interrupt(BaseException):
    """Raised inside user code when its wall-clock or CPU budget runs out (BaseException: `except Exception`
    in user code does not swallow it)."""


class _OutputFlood(BaseException):
    """Raised by print() once a run's output passes _FLOOD_FACTOR * max_output_bytes."""


class _FinalAnswer(BaseException):
    def __init__(self, value: object) -> None:
        self.value = value


class ToolError(Exception):
    """A host-side tool failed; the message names the tool and carries its error."""


class _Capture(io.TextIOBase):
    """sys.stdout/sys.stderr for one run: keeps the first `cap` bytes (UTF-8), counts what it drops, and stops
    the run (raises _OutputFlood) once the dropped part passes `_FLOOD_FACTOR * cap` characters."""

    def __init__(self, cap: int) -> None:
        self._parts: list[str] = []
        self._room = cap
        self._flood = _FLOOD_FACTOR * cap
        self.dropped_chars = 0

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self._room <= 0:  # past the cap: count characters only, never encode (cheap for floods)
            self.dropped_chars += len(text)
            if self.dropped_chars > self._flood:
                raise _OutputFlood()
            return len(text)
        data = text.encode("utf-8", "surrogatepass")
        if len(data) <= self._room:
            self._parts.append(text)
            self._room -= len(data)
        else:
            kept = data[: self._room].decode("utf-8", "ignore")
            self._parts.append(kept)
            self.dropped_chars += len(text) - len(kept)
            self._room = 0
        return len(text)

    def getvalue(self) -> str:
        return "".join(self._parts)


def _clip(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:limit] + f"... [{len(text) - limit} more characters]", True


class Worker:
    """Runs user code in one persistent namespace and answers the host's requests over `sock`."""

    def __init__(self, sock: socket.socket, cfg: dict) -> None:
        self.sock: socket.socket | None = sock
        self.cfg = cfg
        self.armed = False  # signal handlers raise only while user code runs
        self.runs = 0
        self.forks: list[int] = []  # our own forks, reaped lazily (the user may run subprocesses: no waitpid(-1))
        self.own_fork = False
        self.user_child = False
        self.user_forked = False  # the code has forked: exited children of it may need reaping
        self.cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        self.namespace: dict = {"__name__": "__main__", "__builtins__": builtins, "final_answer": self.final_answer,
                                "ToolError": ToolError}
        for name, doc in cfg["tools"].items():
            self.namespace[name] = self._tool_proxy(name, doc)
        for signum in _INTERRUPTS:
            signal.signal(signum, self._on_interrupt)
        os.register_at_fork(after_in_parent=self._after_fork_in_parent, after_in_child=self._after_fork_in_child)

    # -- user-facing functions

    @staticmethod
    def final_answer(value: object = None) -> None:
        """Give the final answer; the run stops here."""
        raise _FinalAnswer(value)

    def _tool_proxy(self, name: str, doc: str):
        def tool(*args, **kwargs):
            return self._call_tool(name, args, kwargs)

        tool.__name__ = tool.__qualname__ = name
        tool.__doc__ = doc or f"{name}(...): a tool that runs outside the sandbox."
        return tool

    def _call_tool(self, name: str, args: tuple, kwargs: dict):
        if self.sock is None:
            raise ToolError(f"{name}() cannot be called from a process forked by the code")
        try:
            json.dumps([args, kwargs])
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}() arguments must be JSON values (str, numbers, bools, None, lists, dicts): "
                            f"{exc}") from None
        # Block the timers while the request is on the wire, so a timeout never cuts a message in half; a timer
        # that fires meanwhile is delivered (and raises) right after the reply arrives.
        signal.pthread_sigmask(signal.SIG_BLOCK, _INTERRUPTS)
        try:
            send_msg(self.sock, {"op": "tool", "name": name, "args": list(args), "kwargs": kwargs})
            reply, _ = recv_msg(self.sock)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _INTERRUPTS)
        if reply is None:
            os._exit(0)  # the host went away
        if not reply.get("ok"):
            raise ToolError(f"{name}() failed: {reply.get('error')}")
        return reply.get("value")

    # -- signals and forks

    def _on_interrupt(self, signum: int, frame) -> None:
        if self.armed:
            raise _Interrupt(signum)

    def _after_fork_in_parent(self) -> None:
        if not self.own_fork:
            self.user_forked = True

    def _after_fork_in_child(self) -> None:
        if self.own_fork:
            return
        # A process the user's code forked: it must never talk to the host or come back into this server.
        self.user_child = True
        if self.sock is not None:
            os.close(self.sock.detach())
            self.sock = None
        try:
            for signum in _INTERRUPTS:  # over its CPU budget (RLIMIT_CPU) it is killed, not interrupted
                signal.signal(signum, signal.SIG_DFL)
        except ValueError:  # forked from a non-main thread
            pass
        cpu = self.cfg.get("cpu_s")
        if cpu:
            _set_cpu_soft(math.ceil(cpu), self.cpu_hard)

    def fork(self) -> None:
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError as exc:
            send_msg(self.sock, {"op": "fork_failed", "error": f"{type(exc).__name__}: {exc}"})
            return
        self.own_fork = True
        try:
            pid = os.fork()
        except OSError as exc:  # e.g. at max_processes
            ours.close()
            theirs.close()
            send_msg(self.sock, {"op": "fork_failed", "error": f"{type(exc).__name__}: {exc}"})
            return
        finally:
            self.own_fork = False
        if pid == 0:  # the copy: continue serving on the new socket
            ours.close()
            os.close(self.sock.detach())
            self.sock, self.forks = theirs, []
            os.setpgid(0, 0)
            return
        theirs.close()
        try:
            os.setpgid(pid, pid)  # also done by the child; whichever runs first wins the race
        except OSError:
            pass
        pidfd = _pidfd(pid)
        try:
            send_msg(self.sock, {"op": "forked", "pid": pid}, [ours.fileno()] + ([pidfd] if pidfd is not None else []))
        finally:
            ours.close()
            if pidfd is not None:
                os.close(pidfd)
        self.forks.append(pid)

    def _reap_children(self) -> None:
        if self.user_forked:
            _reap_strays()
        for pid in list(self.forks):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.forks.remove(pid)

    # -- running code

    def serve(self) -> None:
        sys.argv = [""]
        pidfd = _pidfd(os.getpid())
        send_msg(self.sock, {"op": "ready", "pid": os.getpid(), "uid": os.getuid(), "dropped": self.cfg["dropped"]},
                 [pidfd] if pidfd is not None else [])
        if pidfd is not None:
            os.close(pidfd)
        while True:
            msg, fds = recv_msg(self.sock)
            for fd in fds:
                os.close(fd)
            if msg is None:
                os._exit(0)
            self._reap_children()
            op = msg.get("op")
            if op == "run":
                send_msg(self.sock, self.execute(msg["code"], float(msg["timeout_s"]), msg.get("cpu_s")))
            elif op == "fork":
                self.fork()
            # anything else (a stale message) is ignored

    def execute(self, code: str, timeout_s: float, cpu_s: float | None) -> dict:
        self.runs += 1
        filename = f"<run-{self.runs}>"
        cap = int(self.cfg["max_output_bytes"])
        out = _Capture(cap)
        result: dict = {"op": "result", "value": None, "error": None, "answered": False, "final_answer": None,
                        "truncated": False}
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = out
        try:
            try:
                tree = ast.parse(code, filename, "exec")
                last = None
                if tree.body and isinstance(tree.body[-1], ast.Expr):  # a REPL shows the last expression's value
                    last = ast.Expression(tree.body.pop().value)
                body = compile(tree, filename, "exec")
                tail = compile(last, filename, "eval") if last is not None else None
                linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
                self._arm(timeout_s, cpu_s)
                try:
                    exec(body, self.namespace)
                    if tail is not None:
                        value = eval(tail, self.namespace)
                        if value is not None:
                            result["value"], clipped = _clip(repr(value), cap)
                            result["truncated"] |= clipped
                finally:
                    self.armed = False
            except _Interrupt as exc:
                result["error"] = self._interrupt_message(exc.args[0], timeout_s, cpu_s) + _where(exc, self.runs)
            except _OutputFlood as exc:
                result["error"] = (f"OutputLimitError: the code printed more than {_FLOOD_FACTOR} times "
                                   f"max_output_bytes ({cap} bytes) and was stopped; only the first {cap} bytes "
                                   "are kept" + _where(exc, self.runs))
            except _FinalAnswer as exc:
                result["answered"], result["final_answer"], error = self._final(exc.value, cap)
                result["error"] = error
            except BaseException as exc:  # noqa: B036 - user code may raise anything; it is all reported
                result["error"] = self._describe(exc)
        finally:
            self.armed = False
            self._disarm()
            sys.stdout, sys.stderr = saved
        if self.user_child:  # a forked copy of this worker finished the user's code: it ends here
            os._exit(0 if result["error"] is None else 1)
        result["stdout"] = out.getvalue()
        if out.dropped_chars:
            result["stdout"] += f"\n[output truncated: {out.dropped_chars} more characters were not captured]"
            result["truncated"] = True
        return result

    def _arm(self, timeout_s: float, cpu_s: float | None) -> None:
        # The timers repeat every 0.5 s after the first expiry, in case the code catches the first interruption.
        # ITIMER_PROF measures this process's CPU time precisely; RLIMIT_CPU (whole seconds) is what processes the
        # code starts inherit, and a second chance if the code resets the timer. Earlier code may have replaced
        # the handlers or blocked the signals: undo that first.
        for signum in _INTERRUPTS:
            signal.signal(signum, self._on_interrupt)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _INTERRUPTS)
        if cpu_s:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            _set_cpu_soft(math.ceil(usage.ru_utime + usage.ru_stime + cpu_s) + 1, self.cpu_hard)
            signal.setitimer(signal.ITIMER_PROF, cpu_s, 0.5)
        signal.setitimer(signal.ITIMER_REAL, timeout_s, 0.5)
        self.armed = True

    def _disarm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.setitimer(signal.ITIMER_PROF, 0)
        _set_cpu_soft(resource.RLIM_INFINITY, self.cpu_hard)

    @staticmethod
    def _interrupt_message(signum: int, timeout_s: float, cpu_s: float | None) -> str:
        if signum in (signal.SIGPROF, signal.SIGXCPU):
            return (f"TimeoutError: code used more than {cpu_s:g} s of CPU time and was stopped; the interpreter "
                    "and its variables are kept")
        return (f"TimeoutError: code ran longer than {timeout_s:g} s wall-clock and was stopped; the interpreter "
                "and its variables are kept")

    def _final(self, value: object, cap: int) -> tuple[bool, object, str | None]:
        limit = max(cap, 1 << 20)
        try:
            size = len(json.dumps(value))
        except (TypeError, ValueError, RecursionError):
            try:
                text = str(value)
            except Exception:  # noqa: BLE001 - a broken __str__ in user code
                text = f"<unprintable {type(value).__name__}>"
            return True, _clip(text, limit)[0], None
        if size > limit:
            return False, None, (f"ValueError: the value given to final_answer() is {size} bytes as JSON; the "
                                 f"limit is {limit} bytes")
        return True, value, None

    def _describe(self, exc: BaseException) -> str:
        try:
            if isinstance(exc, SyntaxError) and (exc.filename or "").startswith("<run-"):
                text = (exc.text or "").strip()
                return f"SyntaxError: {exc.msg} (line {exc.lineno}" + (f": {text[:200]})" if text else ")")
            if isinstance(exc, MemoryError):
                head = f"MemoryError: out of memory (the sandbox allows {self.cfg['memory_mb']} MB)"
            else:
                head = traceback.format_exception_only(type(exc), exc)[-1].strip()
        except Exception:  # noqa: BLE001 - e.g. an exception whose __str__ raises
            head = f"{type(exc).__name__} (its message could not be shown)"
        return _clip(head, 2000)[0] + _where(exc, self.runs)


def _reap_strays() -> None:
    """Reap exited children that the code forked and never waited for: zombies count against max_processes.
    Children that a live Popen object (subprocess, multiprocessing) will wait for are left to it."""
    zombies = []
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as f:
                for pid in f.read().split():
                    with open(f"/proc/{pid}/stat") as g:
                        if g.read().rsplit(")", 1)[1].split()[0] == "Z":
                            zombies.append(int(pid))
    except (OSError, IndexError):  # no /proc (or no children files): nothing to do safely
        return
    if not zombies:
        return
    import gc

    held = {getattr(o, "pid", None) for o in gc.get_objects()
            if type(o).__name__ == "Popen" and getattr(o, "returncode", 0) is None}
    for pid in zombies:
        if pid not in held:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def _where(exc: BaseException, run: int) -> str:
    """' (line N: source)' for the innermost frame of the user's code."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<run-")]
    if not frames:
        return ""
    frame = frames[-1]
    label = f"line {frame.lineno}"
    if frame.filename != f"<run-{run}>":
        label += f" of run {frame.filename[5:-1]}"
    line = (frame.line or "").strip()
    return f" ({label}: {line[:200]})" if line else f" ({label})"


def _set_cpu_soft(soft: int, hard: int) -> None:
    if hard != resource.RLIM_INFINITY and (soft == resource.RLIM_INFINITY or soft > hard):
        soft = hard
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


# ------------------------------------------------------------------------------------------------ the supervisor


def _can_work_as(uid: int, home: str) -> bool:
    """Whether an unprivileged `uid` could still import the standard library and use `home` (checked with
    seteuid, reversibly: the real drop cannot be undone)."""
    os.setegid(uid)
    os.seteuid(uid)
    try:
        stdlib = os.path.dirname(os.__file__)
        os.listdir(stdlib)
        with open(os.path.join(stdlib, "json", "__init__.py"), "rb"):
            pass
        dynload = os.path.join(stdlib, "lib-dynload")
        if os.path.isdir(dynload):
            os.listdir(dynload)
        os.listdir(home)
        return True
    except OSError:
        return False
    finally:
        os.seteuid(0)
        os.setegid(0)


def _drop_privileges(cfg: dict) -> bool:
    uid = cfg.get("uid")
    if uid is None or os.geteuid() != 0:
        return False
    home = cfg["home"]
    os.chmod(home, 0o700)  # before the chown: without CAP_FOWNER we may not chmod what we no longer own
    os.chown(home, uid, uid)
    if cfg["mode"] == "process" and not _can_work_as(uid, home):
        os.chown(home, 0, 0)
        return False  # the host warns: this family runs as root
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise RuntimeError("could not drop root privileges")
    return True


def _tasks_of(uid: int) -> int:
    """Threads (RLIMIT_NPROC counts threads) that `uid` runs on this machine."""
    count = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            count += int(fields.get("Threads", "1"))
    return count


def _set_limits(cfg: dict, dropped: bool) -> None:
    memory = int(cfg["memory_mb"]) << 20
    procs = int(cfg["max_processes"])
    if cfg["mode"] == "process" and not dropped and os.getuid() != 0 and os.path.isdir("/proc"):
        procs += _tasks_of(os.getuid())  # shared with everything else this user runs
    limits = {resource.RLIMIT_AS: memory, resource.RLIMIT_FSIZE: memory, resource.RLIMIT_CORE: 0,
              resource.RLIMIT_NPROC: procs, resource.RLIMIT_NOFILE: 1024}
    for which, value in limits.items():
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))


def _prctl(option: int, arg: int) -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, arg, 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort (no ctypes, not Linux)
        pass


def _reap(signum: int, frame) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(argv: list[str]) -> None:
    cfg = json.loads(argv[1])
    ctl = socket.socket(fileno=cfg["ctl_fd"])
    worker_sock = socket.socket(fileno=cfg["worker_fd"])
    cfg["dropped"] = _drop_privileges(cfg)
    if cfg["mode"] == "bwrap" and os.geteuid() == 0:
        raise RuntimeError("refusing to run sandboxed code as root")
    if cfg["mode"] == "process" and sys.platform.startswith("linux"):
        _prctl(38, 1)  # PR_SET_NO_NEW_PRIVS: setuid binaries grant nothing
        _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans of the family stay below us
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (after the uid change, which clears it)
        if os.getppid() != cfg["host_pid"]:
            os._exit(0)  # the host died before we got here
    _set_limits(cfg, cfg["dropped"])
    os.chdir(cfg["home"])
    os.umask(0o077)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    signal.signal(signal.SIGCHLD, _reap)
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            ctl.close()
            os.setpgid(0, 0)
            Worker(worker_sock, cfg).serve()
        finally:
            os._exit(70)
    worker_sock.close()
    while True:  # wait for the host to close the control socket (or die); SIGCHLD interrupts and reaps
        if not ctl.recv(16):
            break
    if cfg["mode"] == "process" and cfg["dropped"]:
        os.kill(-1, signal.SIGKILL)  # every process of this family's own uid, except this one
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
