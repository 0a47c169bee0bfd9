"""The shared-CPU check: a second agentkd process with a model on the CPU is named in a warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from agentkd.models import cpu_jobs
from agentkd.models.cpu_jobs import CpuContentionWarning, other_cpu_jobs, register_cpu_job

CHILD = ("import sys, time; from agentkd.models.cpu_jobs import register_cpu_job; register_cpu_job(); "
         "print('ready', flush=True); time.sleep(float(sys.argv[1]))")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private $AGENTKD_HOME, the check on, and this process not yet registered."""
    monkeypatch.setenv("AGENTKD_HOME", str(tmp_path))
    monkeypatch.delenv("AGENTKD_CPU_JOBS", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(cpu_jobs, "_registered", None)
    yield tmp_path
    (tmp_path / "cpu-jobs" / f"{os.getpid()}.json").unlink(missing_ok=True)


def _start_child(seconds: float) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(seconds), "--student", "x"], stdout=subprocess.PIPE,
                             text=True, env={**os.environ})
    assert child.stdout.readline().strip() == "ready"
    return child


def test_a_second_job_is_named_and_a_killed_one_forgotten(home):
    child = _start_child(60)
    try:
        with pytest.warns(CpuContentionWarning, match=rf"pid {child.pid}: -c .*--student x"):
            others = register_cpu_job()
        assert [job.pid for job in others] == [child.pid]
        assert (home / "cpu-jobs" / f"{os.getpid()}.json").is_file()
    finally:
        child.kill()  # no atexit: its file stays behind, stale
        child.wait()
    assert (home / "cpu-jobs" / f"{child.pid}.json").is_file()
    assert other_cpu_jobs() == []
    assert not (home / "cpu-jobs" / f"{child.pid}.json").exists()  # the stale file is cleared


def test_a_job_that_ends_removes_its_file_and_alone_there_is_no_warning(home, recwarn):
    child = _start_child(0)
    assert child.wait(timeout=60) == 0
    assert list((home / "cpu-jobs").glob("*.json")) == []
    assert register_cpu_job() == []
    assert not [w for w in recwarn if issubclass(w.category, CpuContentionWarning)]
    assert register_cpu_job() == []  # once per process


def test_a_reused_pid_or_a_garbled_file_is_not_a_job(home):
    jobs = home / "cpu-jobs"
    jobs.mkdir()
    # A live pid (our parent) whose recorded start time is not its own: the pid was reused.
    (jobs / "1.json").write_text(json.dumps({"pid": os.getppid(), "command": "old", "started": "-1"}))
    (jobs / "2.json").write_text("{not json")
    assert other_cpu_jobs() == []
    assert not (jobs / "1.json").exists()
    assert (jobs / "2.json").exists()  # perhaps being written: left alone


def test_turned_off_distributed_or_unwritable_never_registers(home, monkeypatch, recwarn):
    child = _start_child(60)
    try:
        monkeypatch.setenv("AGENTKD_CPU_JOBS", "0")
        assert register_cpu_job() == []
        monkeypatch.delenv("AGENTKD_CPU_JOBS")
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert register_cpu_job() == []
        monkeypatch.delenv("WORLD_SIZE")
        blocker = home / "file"
        blocker.write_text("")
        monkeypatch.setenv("AGENTKD_HOME", str(blocker / "home"))  # under a file: cannot be made
        assert register_cpu_job() == []
    finally:
        child.kill()
        child.wait()
    assert not (home / "cpu-jobs" / f"{os.getpid()}.json").exists()
    assert not [w for w in recwarn if issubclass(w.category, CpuContentionWarning)]


def test_loading_a_student_on_the_cpu_registers_it(home, model_dir):
    pytest.importorskip("torch")
    import torch

    from agentkd.models.student import load_student

    if torch.cuda.is_available():
        pytest.skip("on a GPU machine models run on the GPU")
    load_student(model_dir)
    record = json.loads((home / "cpu-jobs" / f"{os.getpid()}.json").read_text())
    assert record["pid"] == os.getpid() and record["started"] == cpu_jobs._start_time(os.getpid())
