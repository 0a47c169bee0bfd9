"""CodeSandbox: behaviour, and that hostile code ends in a clear error while the host stays unaffected.

Most tests run for both isolation modes. bwrap tests skip only when bubblewrap is not installed. Process mode
protects the host only when the code runs as an unprivileged uid: when the host is root and its interpreter lives
under /root (0700), process mode uses /usr/bin/python3 for the code where there is one, and the tests that need
an unprivileged uid skip otherwise.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agentkd.tools import CodeSandbox, RunResult, SandboxError, SandboxIsolationWarning
from agentkd.tools import sandbox as sandbox_module

BWRAP_MISSING = "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
requires_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason=BWRAP_MISSING)


def _usable_by_others(path: str) -> bool:
    """Whether an unprivileged uid can reach `path` (every directory on the way is world-searchable)."""
    path = os.path.realpath(path)
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in [*map(str, Path(path).parents)] if p != "/")


def _process_python() -> str | None:
    if os.geteuid() != 0 or _usable_by_others(sys.base_prefix):
        return None  # the host's own interpreter
    if os.path.exists("/usr/bin/python3") and _usable_by_others("/usr/bin/python3"):
        return "/usr/bin/python3"
    return None


PROCESS_PYTHON = _process_python()


@pytest.fixture(params=[pytest.param("bwrap", marks=requires_bwrap), "process"])
def mode(request) -> str:
    return request.param


def make(mode: str, **options) -> CodeSandbox:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SandboxIsolationWarning)
        return CodeSandbox(isolation=mode, python=PROCESS_PYTHON if mode == "process" else None, **options)


def require_unprivileged(box: CodeSandbox) -> None:
    if box.runs_as_root:
        box.close()
        pytest.skip("process mode runs the code as root here (no unprivileged uid can use the interpreter), so it "
                    "cannot protect the host's files and processes")


def alive_with(marker: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains `marker`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != "Z":
            found.append(int(name))
    return found


def processes_of(uid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            status = Path(f"/proc/{name}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields["Uid"].split()[0]) == uid and fields["State"].split()[0] != "Z":
            found.append(int(name))
    return found


def wait_until(predicate, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------------- behaviour


def test_stdout_value_and_state_persist(mode):
    with make(mode) as box:
        first = box.run("import math\nprint('hello')\nx = 41\nx + 1")
        assert isinstance(first, RunResult)
        assert (first.stdout, first.value, first.error, first.answered) == ("hello\n", "42", None, False)
        second = box.run("def area(r):\n    return math.pi * r * r\nround(area(x), 1)")
        assert second.value == "5281.0" and second.ok
        assert box.run("y = 1").value is None  # no final expression
        assert box.run("None").value is None


def test_errors_name_the_line(mode):
    with make(mode) as box:
        result = box.run("a = 1\nprint('before')\nprint(undefined_name)")
        assert result.error == "NameError: name 'undefined_name' is not defined (line 3: print(undefined_name))"
        assert result.stdout == "before\n"
        assert box.run("def f(d):\n    return d['k']").ok
        assert box.run("f({})").error == "KeyError: 'k' (line 2 of run 2: return d['k'])"
        syntax = box.run("x = (1,\ny = 2")
        assert syntax.error.startswith("SyntaxError: ") and "line 1" in syntax.error
        assert box.run("a").value == "1"  # errors leave the state alone


def test_final_answer_stops_the_run(mode):
    with make(mode) as box:
        result = box.run("print('working')\nfinal_answer({'city': 'Paris', 'n': (1, 2)})\nprint('never')")
        assert result.answered and result.final_answer == {"city": "Paris", "n": [1, 2]}
        assert result.stdout == "working\n" and result.error is None
        odd = box.run("final_answer({1, 2})")  # not JSON: its str()
        assert odd.answered and odd.final_answer == "{1, 2}"
        assert not box.run("1").answered


def test_tools_are_proxied_to_the_host(mode):
    calls = []

    def search(query: str, k: int = 3) -> list[dict]:
        """search(query, k=3): top-k passages."""
        calls.append((query, k))
        return [{"rank": i, "text": f"{query} #{i}"} for i in range(k)]

    def broken(**kwargs):
        raise ValueError(f"bad arguments {sorted(kwargs)}")

    with make(mode, tools={"search": search, "broken": broken}) as box:
        result = box.run("hits = search('paris', k=2)\nprint(search.__doc__)\n[h['text'] for h in hits]")
        assert result.value == "['paris #0', 'paris #1']"
        assert "top-k passages" in result.stdout and calls == [("paris", 2)]
        caught = box.run("try:\n    broken(a=1)\nexcept ToolError as e:\n    print('caught:', e)")
        assert caught.stdout == "caught: broken() failed: ValueError: bad arguments ['a']\n"
        assert box.run("broken()").error.startswith("ToolError: broken() failed: ValueError: bad arguments []")
        assert box.run("search({1, 2})").error.startswith("TypeError: search() arguments must be JSON values")


def test_fork_gives_independent_state(mode):
    box = make(mode)
    try:
        box.run("import json\nx = ['original']")
        copy = box.fork()
        assert copy.isolation == box.isolation
        assert copy.run("x.append('copy')\njson.dumps(x)").value == "'[\"original\", \"copy\"]'"
        assert box.run("x").value == "['original']"  # the copy's change does not reach the original
        box.run("x.append('original again')")
        assert copy.run("x").value == "['original', 'copy']"  # nor the other way round
        grandchild = copy.fork()
        copy.close()  # closing a copy leaves the original (and the copy's own copy) alone
        assert box.run("len(x)").value == "2"
        assert grandchild.run("x").value == "['original', 'copy']"
        with pytest.raises(SandboxError):
            copy.run("x")
        late = box.fork()
        box.close()  # closing the original leaves its forks running, state intact
        assert late.run("x").value == "['original', 'original again']"
        assert grandchild.run("len(x)").value == "2"
        late.close()
        grandchild.close()
    finally:
        box.close()


def test_forks_run_in_parallel(mode):
    with make(mode) as box:
        box.run("import time\nseed = 7")
        copies = [box.fork() for _ in range(3)]
        try:
            with ThreadPoolExecutor(3) as pool:
                began = time.perf_counter()
                results = list(pool.map(lambda c: c[1].run(f"time.sleep(0.5)\nseed * {c[0]}"), enumerate(copies)))
                elapsed = time.perf_counter() - began
            assert [r.value for r in results] == ["0", "7", "14"] and elapsed < 1.2
        finally:
            for copy in copies:
                copy.close()


def test_sandbox_outlives_the_thread_that_made_it(mode):
    made = []
    maker = threading.Thread(target=lambda: made.append(make(mode)))
    maker.start()
    maker.join()
    time.sleep(0.2)  # PR_SET_PDEATHSIG follows the thread that forked: this must not kill the sandbox
    with made[0] as box:
        assert box.run("import os\nos.getppid() != 0").value == "True"
        assert box.run("2 + 2").value == "4" and not box.run("1").state_reset


def test_close_kills_every_descendant(mode):
    box = make(mode)
    mine, theirs = f"9{uuid.uuid4().int % 10**6}.5", f"8{uuid.uuid4().int % 10**6}.5"
    spawn = "import subprocess\nsubprocess.Popen(['sleep', '{}'])\n"
    assert box.run(spawn.format(mine)).ok
    copy = box.fork()
    assert copy.run(spawn.format(theirs) + "import os\nif os.fork() == 0:\n    import time\n    time.sleep(300)").ok
    assert wait_until(lambda: alive_with(mine) and alive_with(theirs))
    copy.close()  # the fork's interpreter, its sleep and its own forked child go; the original's sleep stays
    assert wait_until(lambda: not alive_with(theirs))
    assert alive_with(mine) and box.run("1").value == "1"
    uid = box.uid
    box.close()
    assert wait_until(lambda: not alive_with(mine))
    if uid not in (0, os.getuid()):  # a uid of the sandbox's own: nothing of it may be left
        assert wait_until(lambda: not processes_of(uid))
    box.close()  # idempotent


def test_crash_reports_and_restarts(mode):
    with make(mode) as box:
        box.run("x = 1")
        crashed = box.run("import os\nos._exit(3)")
        assert crashed.error.startswith("SandboxCrashed: ") and "next run starts a fresh interpreter" in crashed.error
        assert crashed.state_reset
        assert box.run("x").error.startswith("NameError")  # fresh interpreter
        segfault = box.run("import ctypes\nctypes.string_at(0)")
        assert segfault.error.startswith("SandboxCrashed: ")
        killed = box.run("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
        assert killed.error.startswith("SandboxCrashed: ")
        assert box.run("6 * 7").value == "42"


def test_subprocesses_keep_their_exit_status_across_runs(mode):
    with make(mode) as box:
        assert box.run("import os, subprocess, time\np = subprocess.Popen(['sh', '-c', 'exit 3'])\n"
                       "if os.fork() == 0:\n    os._exit(0)\ntime.sleep(0.3)").ok
        # the fork's zombie is reaped between runs (it would count against max_processes); p's is left to p
        assert box.run("p.wait()").value == "3"


def test_misuse_raises_sandbox_error(monkeypatch):
    with pytest.raises(SandboxError, match="isolation='docker'"):
        CodeSandbox(isolation="docker")
    with pytest.raises(SandboxError, match="tool name"):
        CodeSandbox(isolation="process", tools={"final_answer": print})
    with pytest.raises(SandboxError, match="memory_mb"):
        CodeSandbox(isolation="process", memory_mb=8)
    box = make("process")
    box.close()
    with pytest.raises(SandboxError, match="closed"):
        box.run("1")
    with pytest.raises(SandboxError, match="closed"):
        box.fork()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SandboxError, match="bubblewrap"):
        CodeSandbox(isolation="bwrap")


def test_auto_falls_back_to_process_with_a_warning(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.warns(SandboxIsolationWarning, match="install bubblewrap"):
        box = CodeSandbox(python=PROCESS_PYTHON)
    with box:
        assert box.isolation == "process" and box.run("1 + 1").value == "2"


@requires_bwrap
def test_auto_uses_bwrap_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with CodeSandbox() as box:
            assert box.isolation == "bwrap" and not box.runs_as_root


# ------------------------------------------------------------------------------------------------ hostile code


def test_infinite_loop_is_interrupted_keeping_state(mode):
    with make(mode, timeout_s=2) as box:
        box.run("kept = 'yes'")
        result = box.run("while True:\n    pass")
        assert result.error.startswith("TimeoutError: code ran longer than 2 s wall-clock and was stopped")
        assert 1.9 < result.duration_s < 3 and not result.state_reset
        assert box.run("kept").value == "'yes'"


def test_uninterruptible_code_is_killed(mode):
    with make(mode, timeout_s=2) as box:
        box.run("kept = 1")
        result = box.run("sum(range(10**14))")  # C code that never checks for signals
        assert result.error.startswith("TimeoutError: the code ran longer than 2 s wall-clock")
        assert "next run starts a fresh interpreter" in result.error and result.state_reset
        assert result.duration_s < 2 + sandbox_module.GRACE_S + 1.5
        assert box.run("'kept' in globals()").value == "False"


def test_cpu_limit(mode):
    with make(mode, timeout_s=10, cpu_s=1) as box:
        result = box.run("while True:\n    pass")
        assert result.error.startswith("TimeoutError: code used more than 1 s of CPU time")
        assert result.duration_s < 4


def test_fork_bomb_is_contained(mode):
    boxes = [make(mode, timeout_s=5, max_processes=16) for _ in range(2)]
    require_unprivileged(boxes[0])
    uids, peak, done = [box.uid for box in boxes], [0], threading.Event()

    def watch() -> None:  # the most processes either sandbox's uid ever had at once
        while not done.is_set():
            peak[0] = max(peak[0], *(len(processes_of(uid)) for uid in uids))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        bomb = boxes[0].run("import os\nwhile True:\n    os.fork()")  # every copy forks too, ends when it fails
        assert bomb.error.startswith("BlockingIOError"), bomb.error
        assert bomb.duration_s < 5 and boxes[0].run("'alive'").value == "'alive'"
        box = boxes[1]
        sleepers = box.run("import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(60)")
        assert sleepers.error.startswith("BlockingIOError"), sleepers.error
        assert 10 <= len(processes_of(box.uid)) <= 16  # it did fork, up to the limit (supervisor, interpreter, 14)
        spawner = box.run("import subprocess\nwhile True:\n    subprocess.Popen(['sleep', '60'])")
        assert spawner.error.startswith("BlockingIOError"), spawner.error
        with pytest.raises(SandboxError, match="fork failed: BlockingIOError"):
            box.fork()
        assert subprocess.run(["true"]).returncode == 0  # the host can still start processes
        assert box.run("'alive'").value == "'alive'"
    finally:
        for box in boxes:
            box.close()
        done.set()
        watcher.join()
    assert peak[0] <= 16
    assert wait_until(lambda: not any(processes_of(uid) for uid in uids))


def test_memory_limit(mode):
    before = max_rss_mb()
    with make(mode, memory_mb=256) as box:
        box.run("kept = 1")
        for code in ("big = bytearray(2 * 1024**3)", "big = [0] * 10**9", "big = 'x' * (512 * 1024**2)"):
            result = box.run(code)
            assert result.error.startswith("MemoryError: out of memory (the sandbox allows 256 MB)"), result.error
        assert box.run("kept").value == "1"
    assert max_rss_mb() - before < 50


@requires_bwrap
def test_network_is_unreachable_under_bwrap():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    try:
        with make("bwrap") as box:
            local = box.run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)")
            assert local.error.startswith("ConnectionRefusedError"), local.error  # its own, empty loopback
            outside = box.run("socket.create_connection(('1.1.1.1', 53), timeout=2)")
            assert outside.error.startswith("OSError: [Errno 101] Network is unreachable"), outside.error
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()


def test_host_files_cannot_be_read(mode, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    secret.chmod(0o600)
    paths = [str(secret), "/etc/shadow"]
    if mode == "bwrap":  # process mode reads what any user may read, such as this repository
        paths += [__file__, str(Path.home() / ".bashrc")]
    with make(mode) as box:
        require_unprivileged(box)
        code = (f"leaks = []\nfor path in {paths!r}:\n    try:\n        leaks.append((path, open(path).read(50)))\n"
                "    except OSError as e:\n        print(type(e).__name__, path)\nleaks")
        result = box.run(code)
        assert result.value == "[]" and "s3cret" not in result.stdout
        assert result.stdout.count("Error") == len(paths)


def test_host_files_cannot_be_changed_or_deleted(mode, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    victim.chmod(0o644)
    escape = Path(f"/tmp/agentkd-sandbox-escape-{uuid.uuid4().hex}")
    targets = {"write": str(victim), "create": str(tmp_path / "created.txt"), "delete": str(victim),
               "rmtree": str(tmp_path), "repo": str(Path(__file__).with_name(f"created-{uuid.uuid4().hex}"))}
    with make(mode) as box:
        require_unprivileged(box)
        code = (f"import os, shutil\nt = {targets!r}\nfor action, call in [\n"
                "    ('write', lambda: open(t['write'], 'w').write('changed')),\n"
                "    ('create', lambda: open(t['create'], 'x').write('new')),\n"
                "    ('delete', lambda: os.remove(t['delete'])),\n"
                "    ('rmtree', lambda: shutil.rmtree(t['rmtree'])),\n"
                "    ('repo', lambda: open(t['repo'], 'x').write('new')),\n"
                "]:\n    try:\n        call()\n        print('DONE', action)\n"
                "    except OSError as e:\n        print('refused', action, type(e).__name__)\n"
                f"open({str(escape)!r}, 'w').write('private tmp')\nopen('in-workdir.txt', 'w').write('fine')")
        result = box.run(code)
        assert "DONE" not in result.stdout, result.stdout
        if mode == "bwrap":  # its /tmp is a private tmpfs; process mode shares the host's world-writable /tmp
            assert result.error is None and not escape.exists()
            elsewhere = box.run("import os\nfor path in ['/x', '/etc/x', '/dev/shm/x', '/usr/x', '/proc/x']:\n"
                                "    try:\n        open(path, 'w').write('x')\n        print('DONE', path)\n"
                                "    except OSError:\n        pass\nsorted(os.listdir('/tmp'))")
            # only its own /tmp (also its working directory) is writable
            assert "DONE" not in elsewhere.stdout and elsewhere.value == repr(sorted([escape.name, "in-workdir.txt"]))
    escape.unlink(missing_ok=True)
    assert victim.read_text() == "original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.txt"]
    assert not Path(targets["repo"]).exists()


def test_host_processes_cannot_be_killed(mode):
    with make(mode) as box:
        require_unprivileged(box)
        parent = box.run("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)")
        assert parent.error is None or parent.error.startswith("SandboxCrashed")
        host = box.run(f"import os, signal\nos.kill({os.getpid()}, signal.SIGKILL)")
        # bwrap: the host's pid does not exist in the sandbox's PID namespace; process mode: another uid's
        assert host.error.startswith(("ProcessLookupError", "PermissionError")), host.error
        assert box.run("'still here'").value == "'still here'"
    assert os.getpid() > 0  # and this test is still running


def test_output_flood_is_truncated(mode):
    before = max_rss_mb()
    with make(mode, timeout_s=10) as box:
        result = box.run("for _ in range(300_000):\n    print('x' * 1000)\nprint('end')")  # 300 MB
        assert result.truncated and result.duration_s < 5
        assert len(result.stdout.encode()) < box.max_output_bytes + 200
        assert "output truncated" in result.stdout.splitlines()[-1]
        assert result.error is None or result.error.startswith("OutputLimitError")
        small = box.run("print('x' * 100)\n'y' * 10**6")  # a huge value is cut the same way
        assert small.stdout == "x" * 100 + "\n" and small.truncated and len(small.value) < box.max_output_bytes + 100
    assert max_rss_mb() - before < 50


def test_bench_sandbox_command_prints_each_mode():
    from typer.testing import CliRunner

    from agentkd.cli import app

    result = CliRunner().invoke(app, ["bench", "sandbox", "--runs", "5"])
    assert result.exit_code == 0, result.output
    assert "process" in result.output and "fork ms" in result.output
    assert ("bwrap" in result.output) == (shutil.which("bwrap") is not None)
