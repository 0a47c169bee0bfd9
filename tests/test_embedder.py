"""The store's embedders: the static one distilled offline from the packaged MiniLM, its cache, the
choice of embedder by name and what a store records, and embedding each distinct text once.

The default tests distil a narrow vocabulary (about 1,400 tokens: short words, single-letter word
pieces, digits) into a private ``$AGENTKD_HOME`` once per session, which takes seconds; the full
build (30,000 tokens, one to two minutes on two cores) is the slow test.
"""

from __future__ import annotations

import json
import os
import uuid

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("chromadb")
pytest.importorskip("sentence_transformers")
pytest.importorskip("model2vec")

from agentkd.bench.episodes import expert_trajectories  # noqa: E402
from agentkd.store import ExperienceStore, StoreError  # noqa: E402
from agentkd.store.embedder_choice import EMBEDDERS, EmbedderChoiceError, make_embedding_function  # noqa: E402
from agentkd.store.static import (  # noqa: E402
    DISTILLED_MARKER,
    PCA_DIMS,
    STATIC_EMBEDDER_NAME,
    STATIC_VERSION,
    StaticEmbedderError,
    StaticEmbeddingFunction,
    build_static_model,
    load_static_model,
    static_model_dir,
)

#: Everything but special tokens, words of up to three letters, single-letter word pieces and digits.
SMALL = r"(?!\[(PAD|UNK|CLS|SEP|MASK)\]$|[a-z]{1,3}$|##[a-z]$|[0-9.,:>!?]$)"


@pytest.fixture(scope="session")
def agentkd_home(tmp_path_factory):
    """A private $AGENTKD_HOME holding one small static build, made once per session."""
    home = tmp_path_factory.mktemp("agentkd-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGENTKD_HOME", str(home))
        build_static_model(token_remove_pattern=SMALL)
        yield home


@pytest.fixture(scope="session")
def small_static(agentkd_home):
    return StaticEmbeddingFunction(token_remove_pattern=SMALL)


@pytest.fixture(scope="session")
def minilm():
    from agentkd.store import default_embedding_function

    return default_embedding_function(cache_size=0)


def _cos(a, b) -> float:
    return float(np.dot(a, b))


# ---- the static embedder ------------------------------------------------------------------------


def test_static_builds_offline_and_embeds(agentkd_home, small_static):
    target = static_model_dir(SMALL)
    assert target.parent.parent == agentkd_home and (target / "model.safetensors").is_file()
    marker = json.loads((target / DISTILLED_MARKER).read_text())
    assert marker["version"] == STATIC_VERSION and marker["dims"] == PCA_DIMS
    vectors = small_static(
        ["> go to countertop 1", "> go to countertop 2", "Goal: heat some egg and put it in fridge."]
    )
    assert len(vectors) == 3 and all(v.shape == (PCA_DIMS,) and v.dtype == np.float32 for v in vectors)
    assert all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in vectors)
    assert _cos(vectors[0], vectors[1]) > _cos(vectors[0], vectors[2])
    assert small_static.name() == STATIC_EMBEDDER_NAME == EMBEDDERS["static"]


def test_cached_model_is_reused(agentkd_home, small_static):
    target = static_model_dir(SMALL)
    before = {path.name: path.stat().st_mtime_ns for path in target.iterdir()}
    assert build_static_model(token_remove_pattern=SMALL) == target
    load_static_model(token_remove_pattern=SMALL)
    assert {path.name: path.stat().st_mtime_ns for path in target.iterdir()} == before
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_corrupt_or_stale_cache_is_rebuilt(agentkd_home, small_static):
    target = static_model_dir(SMALL)
    text = "> take mug 1 from countertop 1"
    reference = small_static.encode([text])[0]
    (target / "model.safetensors").write_bytes(b"not a safetensors file")  # damaged after a finished build
    rebuilt = load_static_model(token_remove_pattern=SMALL)
    vector = np.asarray(rebuilt.encode([text])[0], dtype=np.float32)
    assert np.allclose(vector / np.linalg.norm(vector), reference, atol=1e-3)  # the build is deterministic

    marker = json.loads((target / DISTILLED_MARKER).read_text())
    (target / DISTILLED_MARKER).write_text(json.dumps(marker | {"version": STATIC_VERSION - 1}))  # older builder
    stamp = (target / "model.safetensors").stat().st_mtime_ns
    build_static_model(token_remove_pattern=SMALL)
    assert json.loads((target / DISTILLED_MARKER).read_text())["version"] == STATIC_VERSION
    assert (target / "model.safetensors").stat().st_mtime_ns != stamp


def test_unfinished_build_is_refused(tmp_path):
    half = tmp_path / "half"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"")  # an interrupted build has no marker
    with pytest.raises(StaticEmbedderError, match="no finished static embedder build"):
        StaticEmbeddingFunction(path=half)(["text"])


# ---- choosing an embedder -----------------------------------------------------------------------


def test_embedder_names(minilm):
    assert EMBEDDERS["minilm"] == minilm.name()
    assert isinstance(make_embedding_function("static"), StaticEmbeddingFunction)
    with pytest.raises(EmbedderChoiceError, match="unknown embedder 'bert'.*minilm, static"):
        make_embedding_function("bert")


@pytest.fixture(scope="module")
def episodes():
    return list(expert_trajectories(60))[:4]


def test_store_refuses_the_other_embedder_naming_both(tmp_path, minilm, small_static, episodes):
    location = tmp_path / "store"
    with ExperienceStore(location, embedding_function=small_static, spool_dir=tmp_path / "spool") as store:
        store.upsert(episodes[:2])
        assert store.meta["embedder"] == STATIC_EMBEDDER_NAME
    for other in (minilm, "minilm"):
        with pytest.raises(StoreError) as info:
            ExperienceStore(location, embedding_function=other, create=False, spool_dir=tmp_path / "spool")
        assert STATIC_EMBEDDER_NAME in str(info.value) and EMBEDDERS["minilm"] in str(info.value)


def test_store_without_a_choice_keeps_its_recorded_embedder(tmp_path, minilm, episodes):
    location = tmp_path / "store"
    with ExperienceStore(location, embedding_function=minilm, spool_dir=tmp_path / "spool") as store:
        store.upsert(episodes[:2])
    again = ExperienceStore(location, create=False, spool_dir=tmp_path / "spool")
    assert again.embedder == EMBEDDERS["minilm"]
    hits = again.query_steps(episodes[0].goal, k=1)
    assert hits and hits[0].trajectory_id in {t.trajectory_id for t in episodes[:2]}
    again.close()


def test_store_with_an_unknown_recorded_embedder_needs_one(tmp_path):
    from chromadb.utils.embedding_functions import DefaultEmbeddingFunction

    location = tmp_path / "store"
    ExperienceStore(location, embedding_function=DefaultEmbeddingFunction(), spool_dir=tmp_path / "spool").close()
    with pytest.raises(StoreError, match="agentkd cannot build"):
        ExperienceStore(location, create=False, spool_dir=tmp_path / "spool")


def test_corpus_index_takes_the_static_embedder(tmp_path, small_static, minilm):
    from agentkd.tools.retrieval import CorpusIndex, CorpusIndexError, Document

    docs = [
        Document(id="a", title="Kettle", text="A kettle boils water on the stove."),
        Document(id="b", title="Bicycle", text="A bicycle has two wheels and pedals."),
    ]
    with CorpusIndex(tmp_path / "corpus", embedding_function=small_static, hybrid=False) as index:
        index.add(docs)
        assert index.search("boil water in a kettle", k=1)[0].id == "a"
    with pytest.raises(CorpusIndexError, match=f"{STATIC_EMBEDDER_NAME}.*{EMBEDDERS['minilm']}"):
        CorpusIndex(tmp_path / "corpus", embedding_function=minilm)


# ---- each distinct text once --------------------------------------------------------------------


def test_each_distinct_text_is_embedded_once(tmp_path, minilm, small_static, episodes):
    before = minilm.encoded_texts
    vectors = minilm(["go to sink 1", "open fridge 1", "go to sink 1", "go to sink 1"])
    assert minilm.encoded_texts - before == 2  # no cache (cache_size=0): only the batch is de-duplicated
    assert np.array_equal(vectors[0], vectors[2]) and not np.array_equal(vectors[0], vectors[1])

    from agentkd.store.records import steps_of

    copy = episodes[0].model_copy(deep=True)
    copy.trajectory_id = f"copy-{uuid.uuid4().hex[:6]}"  # the same episode again, another id
    batch = [episodes[0], copy, episodes[1]]
    fresh = StaticEmbeddingFunction(token_remove_pattern=SMALL, cache_size=0)
    with ExperienceStore(tmp_path / "store", embedding_function=fresh, spool_dir=tmp_path / "spool") as store:
        store.upsert(batch)
        assert store.count_steps() == sum(t.num_steps for t in batch)
    contexts = {context for traj in batch for _, context in steps_of(traj)}
    goals = {traj.goal for traj in batch}
    assert fresh.encoded_texts == len(contexts) + len(goals)


# ---- the full build -----------------------------------------------------------------------------


@pytest.mark.slow
def test_full_static_build_from_the_packaged_model(tmp_path, monkeypatch, minilm):
    monkeypatch.setenv("AGENTKD_HOME", str(tmp_path))
    ef = make_embedding_function("static")
    texts = [t.goal for t in expert_trajectories(400)][:40]
    vectors = np.stack(ef(texts))
    assert vectors.shape == (len(texts), PCA_DIMS)
    assert json.loads((static_model_dir() / DISTILLED_MARKER).read_text())["dims"] == PCA_DIMS
    # The distilled model keeps MiniLM's sense of similarity: its nearest goal agrees with MiniLM's mostly.
    reference = np.stack(minilm(texts))
    ours, theirs = vectors @ vectors.T, reference @ reference.T
    np.fill_diagonal(ours, -2)
    np.fill_diagonal(theirs, -2)
    assert np.mean(ours.argmax(1) == theirs.argmax(1)) >= 0.5


# ---- the command line ---------------------------------------------------------------------------


def test_cli_embedder_option(tmp_path, small_static, episodes):
    from typer.testing import CliRunner

    from agentkd.cli import app

    bad = CliRunner().invoke(app, ["collect", "--episodes", "1", "--store", str(tmp_path / "x"), "--embedder", "bert"])
    assert bad.exit_code == 2 and "unknown embedder 'bert'" in bad.output
    assert not (tmp_path / "x").exists()  # refused before anything was created

    location = tmp_path / "store"
    ExperienceStore(location, embedding_function=small_static, spool_dir=tmp_path / "spool").close()
    stats = CliRunner().invoke(app, ["store", "stats", "--store", str(location)])
    assert stats.exit_code == 0 and STATIC_EMBEDDER_NAME in stats.output  # opened with its recorded embedder
    other = CliRunner().invoke(app, ["collect", "--episodes", "1", "--store", str(location), "--embedder", "minilm"])
    assert other.exit_code == 2 and STATIC_EMBEDDER_NAME in other.output and EMBEDDERS["minilm"] in other.output
