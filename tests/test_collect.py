"""Trajectory collection into a real embedded Chroma store: counts, resume after SIGKILL, stats."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from agentkd.cli import app
from agentkd.collect import collect, plan_episodes
from agentkd.policies.expert import ExpertPolicy
from agentkd.store import ExperienceStore
from environments.household import load_split

ROOT = Path(__file__).resolve().parents[1]


def test_collect_expert_trajectories_and_resume_without_duplicates(tmp_path):
    store = ExperienceStore(tmp_path / "store")
    first = collect(ExpertPolicy(), "household", "valid_seen", 12, store, workers=4, flush_every=5)
    assert first.played == 12 and first.succeeded == 12 and first.stored_total == 12
    again = collect(ExpertPolicy(), "household", "valid_seen", 20, store, workers=4)
    assert again.already_stored == 12 and again.played == 8 and again.stored_total == 20
    assert store.count() == 20
    steps = store.query_steps(load_split("valid_seen")[0].goal, k=3, env="household")
    assert steps and all(hit.action for hit in steps)


def test_plan_cycles_the_split_with_new_seeds():
    tasks = load_split("valid_seen")
    plan = plan_episodes(tasks, 300)
    assert plan[0] == (tasks[0], 0) and plan[140] == (tasks[0], 1) and plan[299] == (tasks[19], 2)


def _collect_cmd(store: Path, episodes: int) -> list[str]:
    return [sys.executable, "-m", "agentkd.cli", "collect", "--env", "household", "--split", "train",
            "--teacher", "expert", "--episodes", str(episodes), "--store", str(store), "--workers", "4",
            "--flush-every", "8"]


def test_a_run_killed_with_sigkill_resumes_to_exactly_n_unique_trajectories(tmp_path):
    store_path, episodes = tmp_path / "store", 120
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_collect_cmd(store_path, episodes), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    stored_lines = []
    deadline = time.monotonic() + 240
    for line in proc.stdout:  # kill it after its second committed batch, mid-run
        if line.startswith("stored"):
            stored_lines.append(line)
            if len(stored_lines) == 2:
                os.killpg(proc.pid, signal.SIGKILL)
                break
        assert time.monotonic() < deadline, "collect never stored a batch"
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"

    result = subprocess.run(_collect_cmd(store_path, episodes), cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "already stored" in result.stdout
    store = ExperienceStore(store_path, create=False)
    assert store.count() == episodes
    ids = [t.trajectory_id for t in store.iterate()]
    assert len(ids) == len(set(ids)) == episodes


def test_store_stats_command(tmp_path):
    store = ExperienceStore(tmp_path / "store")
    collect(ExpertPolicy(), "household", "valid_unseen", 6, store, workers=2)
    result = CliRunner().invoke(app, ["store", "stats", "--store", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output
    assert "6 trajectories" in result.output and "household-expert" in result.output


def test_stats_on_a_folder_that_is_not_a_store_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = CliRunner().invoke(app, ["store", "stats", "--store", str(tmp_path)])
    assert result.exit_code == 2 and "not an agentkd store" in result.output


def test_collect_with_a_local_hf_model_as_teacher(tmp_path, model_dir):
    store_path = tmp_path / "store"
    result = CliRunner().invoke(app, ["collect", "--split", "valid_unseen", "--teacher", str(model_dir),
                                      "--episodes", "3", "--max-steps", "2", "--store", str(store_path),
                                      "--workers", "3"])
    assert result.exit_code == 0, result.output
    store = ExperienceStore(store_path, create=False)
    trajectories = list(store.iterate(policy_kind="hf_model"))
    assert len(trajectories) == 3 and all(t.num_steps == 2 for t in trajectories)
    assert all(s.raw_output and s.completion_tokens > 0 for t in trajectories for s in t.steps)


def test_unknown_teacher_model_offline_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["collect", "--teacher", "no-such-org/no-such-model", "--episodes", "1",
                                      "--store", str(tmp_path / "store")])
    assert result.exit_code == 2 and "no-such-org/no-such-model" in result.output
