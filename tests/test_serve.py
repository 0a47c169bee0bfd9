"""`agentkd serve`: the tiny student behind a real OpenAI-compatible endpoint, used by the real `openai`
client, LangChain's ChatOpenAI and agentkd's own `--teacher openai:NAME` (the local stand-in for hosted APIs)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agentkd.store import ExperienceStore

openai = pytest.importorskip("openai")
ROOT = Path(__file__).resolve().parents[1]
KEY, NAME = "sk-agentkd-test", "tiny-student"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    """`agentkd serve` on the tiny student, started as a user would and stopped after the module's tests."""
    port, log = _free_port(), tmp_path_factory.mktemp("serve") / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "agentkd.cli", "serve", "--student", str(model_dir), "--port", str(port),
             "--name", NAME, "--api-key", KEY, "--max-tokens", "24"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, log.read_text()
        try:
            request = urllib.request.Request(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"})
            with urllib.request.urlopen(request, timeout=1):
                break
        except OSError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=30)


def test_the_openai_client_gets_completions_with_samples_usage_and_stops(server):
    client = openai.OpenAI(base_url=server, api_key=KEY)
    assert [m.id for m in client.models.list().data] == [NAME]
    messages = [{"role": "user", "content": "You are in the middle of a room. Your task is to: put a mug in sink."}]
    reply = client.chat.completions.create(model=NAME, messages=messages, n=3, temperature=1.0, max_tokens=12)
    assert len(reply.choices) == 3 and all(isinstance(c.message.content, str) for c in reply.choices)
    assert reply.usage.prompt_tokens > 10 and 0 < reply.usage.completion_tokens <= 36
    greedy = client.chat.completions.create(model=NAME, messages=messages, max_tokens=16)
    text = greedy.choices[0].message.content
    assert text and text == client.chat.completions.create(model=NAME, messages=messages, max_tokens=16)\
        .choices[0].message.content  # greedy is deterministic
    cut = client.chat.completions.create(model=NAME, messages=messages, max_tokens=16, stop=[text[1:3]])
    assert cut.choices[0].message.content == text[: text.find(text[1:3])] and cut.choices[0].finish_reason == "stop"


def test_wrong_key_model_or_body_are_the_client_s_usual_errors(server):
    messages = [{"role": "user", "content": "hello"}]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server, api_key="sk-wrong").chat.completions.create(model=NAME, messages=messages)
    client = openai.OpenAI(base_url=server, api_key=KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError, match="serves 'tiny-student'"):
        client.chat.completions.create(model="gpt-4o", messages=messages)
    with pytest.raises(openai.BadRequestError, match="non-empty 'messages'"):
        client.chat.completions.create(model=NAME, messages=[])


def test_langchain_chat_openai_uses_the_student(server):
    langchain_openai = pytest.importorskip("langchain_openai")
    chat = langchain_openai.ChatOpenAI(model=NAME, base_url=server, api_key=KEY, max_tokens=8)
    reply = chat.invoke("Your task is to: find a mug.")
    assert isinstance(reply.content, str) and reply.usage_metadata["output_tokens"] > 0


def test_collect_with_the_served_student_as_an_openai_teacher(server, tmp_path):
    pytest.importorskip("langchain_openai")
    cmd = [sys.executable, "-m", "agentkd.cli", "collect", "--split", "valid_unseen", "--episodes", "3",
           "--teacher", f"openai:{NAME}", "--max-steps", "2", "--max-new-tokens", "24", "--workers", "3",
           "--store", str(tmp_path / "store")]
    env = {**os.environ, "OPENAI_BASE_URL": server, "OPENAI_API_KEY": KEY}
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    trajectories = list(ExperienceStore(tmp_path / "store", create=False).iterate(policy_kind="chat_model"))
    assert len(trajectories) == 3 and all(t.num_steps == 2 for t in trajectories)
    assert all(step.raw_output and step.completion_tokens > 0 for t in trajectories for step in t.steps)

    wrong = subprocess.run(cmd, cwd=ROOT, env={**env, "OPENAI_API_KEY": "sk-wrong"}, capture_output=True,
                           text=True, timeout=600)  # the three episodes exist: a new run, so a new store
    refused = subprocess.run([*cmd[:-1], str(tmp_path / "store2")], cwd=ROOT,
                             env={**env, "OPENAI_API_KEY": "sk-wrong"}, capture_output=True, text=True, timeout=600)
    assert wrong.returncode == 0 and "0 episodes played (3 already stored)" in wrong.stdout
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "cannot go on:" in refused.stderr and "AuthenticationError: Error code: 401" in refused.stderr


def test_requests_that_arrive_together_are_generated_as_one_batch(model_dir):
    from agentkd.policies.hf import HFGenerator
    from agentkd.serve import Batcher, ChatRequest

    batcher = Batcher(HFGenerator(str(model_dir)), max_wait_s=0.2)

    async def three() -> list:
        worker = asyncio.create_task(batcher.run())
        requests = [ChatRequest([{"role": "user", "content": f"task {i}"}], n, 4, 0.0, 1.0, ()) for i, n in
                    enumerate((1, 2, 1))]
        replies = await asyncio.gather(*(batcher.submit(r) for r in requests))
        worker.cancel()
        return replies

    replies = asyncio.run(three())
    assert [len(r) for r in replies] == [1, 2, 1] and batcher.batches == [4]


def test_eval_takes_a_served_model_as_student_and_as_the_cascade_s_teacher(server, model_dir, tmp_path):
    pytest.importorskip("langchain_openai")
    from agentkd.eval.metrics import EvalResults

    env = {**os.environ, "OPENAI_BASE_URL": server, "OPENAI_API_KEY": KEY}
    base = [sys.executable, "-m", "agentkd.cli", "eval", "--split", "valid_unseen", "--max-tasks", "2",
            "--max-steps", "2", "--max-new-tokens", "24"]
    ceiling = subprocess.run([*base, "--student", f"openai:{NAME}", "--configs", "greedy,teacher",
                              "--out", str(tmp_path / "ceiling")], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=600)
    assert ceiling.returncode == 0, ceiling.stdout + ceiling.stderr
    results = EvalResults.load(tmp_path / "ceiling")
    assert results.metadata["student"] == NAME and [c.name for c in results.configs] == ["greedy", "teacher"]
    assert results.configs[1].metrics.overall.success_rate == 0  # the expert needs more than 2 steps: real runs
    greedy = results.configs[0]
    assert greedy.episodes and all(e.steps == 2 for e in greedy.episodes)

    refused = subprocess.run([*base, "--student", f"openai:{NAME}", "--configs", "sc@4", "--out",
                              str(tmp_path / "x")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "need a local student" in refused.stderr

    cascade = subprocess.run([*base, "--student", str(model_dir), "--teacher", f"openai:{NAME}", "--configs",
                              "sc@2+cascade@1.0", "--out", str(tmp_path / "cascade")], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
    assert cascade.returncode == 0, cascade.stdout + cascade.stderr
    results = EvalResults.load(tmp_path / "cascade")
    assert results.metadata["teacher"] == NAME and results.configs[0].metrics.overall.deferral_rate > 0
