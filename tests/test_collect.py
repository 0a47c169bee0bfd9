"""Trajectory collection into a real embedded Chroma store: counts, resume after SIGKILL or SIGTERM, stats."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentkd.cli import app
from agentkd.collection import CollectionAborted, collect, parse_shard, plan_episodes
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


def test_a_run_stopped_with_sigterm_stores_every_episode_that_finished(tmp_path):
    """`kill PID` (or `timeout`, or a scheduler) is Ctrl-C: the run stops playing and writes the finished
    episodes still waiting for the writer, which the default SIGTERM would lose."""
    store_path, episodes = tmp_path / "store", 400
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_collect_cmd(store_path, episodes), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    output = []
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        output.append(line)
        if line.startswith("stored"):  # mid-run, with episodes playing and finished ones pending
            proc.send_signal(signal.SIGTERM)
            break
        assert time.monotonic() < deadline, "collect never stored a batch"
    output += proc.stdout.readlines()
    proc.wait(timeout=120)
    text = "".join(output)
    assert proc.returncode == 130, text
    stopped = re.search(r"stopped: (\d+) episodes finished, (\d+) stored", text)
    assert stopped, text
    finished, stored = int(stopped[1]), int(stopped[2])
    assert 8 <= finished < episodes and stored == finished
    assert ExperienceStore(store_path, create=False).count() == finished


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
    trajectories = list(store.iterate(policy_kind="student"))
    assert len(trajectories) == 3 and all(t.num_steps == 2 for t in trajectories)
    assert all(s.raw_output and s.completion_tokens > 0 for t in trajectories for s in t.steps)
    # It plays on the replay engine, as a student does in eval (the policy kind says so).
    assert {t.policy.name for t in trajectories} == {str(model_dir)}
    assert all(t.policy.params["samples"] == 1 for t in trajectories)


def test_a_local_teacher_samples_at_a_temperature_and_refuses_expert_and_chat_options(tmp_path, model_dir):
    store_path = tmp_path / "store"
    run = ["collect", "--split", "valid_unseen", "--teacher", str(model_dir), "--episodes", "2", "--max-steps", "2",
           "--store", str(store_path)]
    result = CliRunner().invoke(app, [*run, "--temperature", "0.9"])
    assert result.exit_code == 0, result.output
    trajectories = list(ExperienceStore(store_path, create=False).iterate(policy_kind="student"))
    assert len(trajectories) == 2 and all(t.policy.params["temperature"] == 0.9 for t in trajectories)
    for bad, said in ((["--first-thought"], "--first-thought"), (["--mistake-rate", "0.1"], "expert teacher"),
                      (["--slip-lookahead", "2"], "expert teacher")):
        result = CliRunner().invoke(app, [*run, *bad])
        assert result.exit_code == 2 and said in result.output, result.output


def test_the_noisy_expert_takes_its_lookahead_from_the_command_line(tmp_path):
    run = ["collect", "--split", "valid_unseen", "--teacher", "expert", "--episodes", "2", "--slip-lookahead", "2",
           "--store", str(tmp_path / "store")]
    result = CliRunner().invoke(app, run)
    assert result.exit_code == 2 and "only with a mistake rate" in result.output, result.output
    result = CliRunner().invoke(app, [*run, "--mistake-rate", "0.2"])
    assert result.exit_code == 0, result.output
    trajectories = list(ExperienceStore(tmp_path / "store", create=False).iterate(policy_kind="noisy_expert"))
    assert len(trajectories) == 2 and all(t.policy.params["lookahead"] == 2 for t in trajectories)


def test_unknown_teacher_model_offline_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["collect", "--teacher", "no-such-org/no-such-model", "--episodes", "1",
                                      "--store", str(tmp_path / "store")])
    assert result.exit_code == 2 and "no-such-org/no-such-model" in result.output


# ---- scaling out: shards, failures, one writer per folder, any chat model --------------------------------


def test_shards_are_disjoint_and_together_are_the_plan():
    tasks = load_split("valid_seen")
    whole = plan_episodes(tasks, 50)
    shards = [plan_episodes(tasks, 50, (k, 3)) for k in range(3)]
    assert sorted(sum(shards, []), key=whole.index) == whole
    assert sum(len(shard) for shard in shards) == 50 and shards[1][0] == whole[1]
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "1", "a/b", "-1/2"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def test_two_shard_processes_fill_one_chroma_server_exactly(tmp_path):
    from test_store import _start_server, _stop_server  # the store tests' `chroma run` helpers

    process, url = _start_server(tmp_path / "data", tmp_path / "server.log")
    try:
        cmd = [sys.executable, "-m", "agentkd.cli", "collect", "--split", "valid_seen", "--episodes", "30",
               "--store", url, "--workers", "4"]
        shards = [subprocess.Popen([*cmd, "--shard", f"{k}/2"], cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True) for k in range(2)]
        outputs = [shard.communicate(timeout=300)[0] for shard in shards]
        assert [shard.returncode for shard in shards] == [0, 0], outputs
        assert all("15 episodes played" in out for out in outputs), outputs
        store = ExperienceStore(url, create=False)
        ids = [t.trajectory_id for t in store.iterate()]
        assert len(ids) == len(set(ids)) == 30
        store.close()
    finally:
        _stop_server(process)


def test_a_second_process_writing_the_same_store_folder_is_refused(tmp_path):
    store_path = tmp_path / "store"
    store = ExperienceStore(store_path)
    collect(ExpertPolicy(), "household", "valid_seen", 2, store)  # this process now writes the folder
    again = ExperienceStore(store_path)  # a second store of the same process shares the claim
    assert collect(ExpertPolicy(), "household", "valid_seen", 3, again).played == 1
    cmd = [sys.executable, "-m", "agentkd.cli", "collect", "--split", "valid_seen", "--episodes", "4",
           "--store", str(store_path)]
    refused = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"being written by pid {os.getpid()}" in " ".join(refused.stderr.split())
    store.close(), again.close()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ExperienceStore(store_path, create=False).count() == 4


class _FailingTeacher:
    """The real expert, except that its calls for some tasks raise (a teacher API that fails now and then)."""

    def __init__(self, failing: set[str], error: Exception):
        self.expert, self.failing, self.error = ExpertPolicy(), failing, error
        self.info = self.expert.info

    def act(self, inputs):
        if any(inp.task.task_id in self.failing for inp in inputs):
            raise self.error
        return self.expert.act(inputs)


def test_a_failed_episode_is_recorded_and_the_run_goes_on(tmp_path):
    tasks = load_split("valid_seen")
    failing = {tasks[1].task_id, tasks[4].task_id}
    store = ExperienceStore(tmp_path / "store")
    teacher = _FailingTeacher(failing, TimeoutError("the teacher did not answer"))
    summary = collect(teacher, "household", "valid_seen", 8, store, workers=1, max_failures=2)
    assert summary.played == 6 and store.count() == 6
    assert {f.task_id for f in summary.failures} == failing
    assert all(f.error == "TimeoutError: the teacher did not answer" for f in summary.failures)

    with pytest.raises(CollectionAborted, match="more than --max-failures 0"):
        collect(teacher, "household", "valid_seen", 12, ExperienceStore(tmp_path / "store2"), workers=1,
                max_failures=0)


def test_an_authentication_error_stops_the_run_at_once(tmp_path):
    openai = pytest.importorskip("openai")
    httpx = pytest.importorskip("httpx")
    response = httpx.Response(401, request=httpx.Request("POST", "http://127.0.0.1/v1/chat/completions"))
    error = openai.AuthenticationError("Incorrect API key provided", response=response, body=None)
    tasks = load_split("valid_seen")
    with pytest.raises(CollectionAborted, match="cannot go on: AuthenticationError: Incorrect API key"):
        collect(_FailingTeacher({tasks[0].task_id}, error), "household", "valid_seen", 10,
                ExperienceStore(tmp_path / "store"), workers=1, max_failures=100)


def test_an_unreachable_teacher_endpoint_is_one_line_not_a_traceback(tmp_path):
    pytest.importorskip("langchain_openai")
    env = {**os.environ, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-test"}
    cmd = [sys.executable, "-m", "agentkd.cli", "collect", "--split", "valid_seen", "--episodes", "2",
           "--teacher", "openai:gpt-test", "--max-failures", "0", "--max-new-tokens", "64",
           "--store", str(tmp_path / "store")]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr
    assert "more than --max-failures 0" in result.stderr and "ConnectionError: Connection error" in result.stderr


@pytest.mark.parametrize("teacher, says", [("nosuchprovider:model-x", "Unsupported provider"),
                                           ("anthropic:claude-x", "langchain-anthropic")])
def test_a_provider_teacher_that_cannot_be_made_is_one_line(tmp_path, teacher, says):
    pytest.importorskip("langchain")
    result = CliRunner().invoke(app, ["collect", "--teacher", teacher, "--episodes", "1",
                                      "--store", str(tmp_path / "store")])
    assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output


def test_each_episode_is_a_named_tagged_run_for_langsmith(tmp_path):
    from langchain_core.callbacks import BaseCallbackHandler

    class Roots(BaseCallbackHandler):  # what a tracer (LangSmith's among them) receives for each episode's graph
        def __init__(self):
            self.runs = []

        def on_chain_start(self, serialized, inputs, *, run_id, parent_run_id=None, tags=None, metadata=None,
                           **kwargs):
            if parent_run_id is None:
                self.runs.append((kwargs.get("name"), tags, metadata))

    roots = Roots()
    tasks = load_split("valid_seen")
    collect(ExpertPolicy(), "household", "valid_seen", 2, ExperienceStore(tmp_path / "store"), callbacks=[roots],
            tags=("eval", "sc@8"), metadata={"configuration": "sc@8"})
    assert sorted(name for name, _, _ in roots.runs) == [f"household:{t.task_id}" for t in tasks[:2]]
    name, tags, metadata = roots.runs[0]
    assert {"agentkd", "household", "valid_seen", "eval", "sc@8"} <= set(tags)
    assert metadata["configuration"] == "sc@8" and metadata["policy"] == "household-expert"
    assert {metadata["task_id"], metadata["seed"], metadata["split"]} <= {tasks[0].task_id, tasks[1].task_id, 0,
                                                                         "valid_seen"}
