"""Experience-store benchmark: ingest rate and query latency per embedder, and how their neighbours agree.

    from agentkd.bench.store import bench_store
    bench_store(100_000, embedders=("static", "minilm"), max_steps={"minilm": 20_000})

Trajectories come from playing the household expert on ``train`` tasks (one pass over the tasks
gives about 36,000 distinct steps); past that, episodes are reused under new ids (another seed),
as a long recording of the same tasks would. Each embedder gets a fresh store and the same
trajectories. Its embedding function keeps no cache across upserts, so the ingest rate is not
flattered by the repeats; within one upsert each distinct text is embedded once (as the store
always does), and ``embedded_texts`` reports how many texts the model actually encoded.

The comparison (:func:`compare_embedders`) embeds the same step contexts with every embedder and
reports texts/s, recall@5 of each embedder's nearest neighbours against MiniLM's for held-out
queries, and how often the in-context distillation demonstrations (top 3 of the same task type)
agree.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentkd.schema import Trajectory

from .episodes import expert_trajectories, play_expert

__all__ = ["bench_store", "compare_embedders", "held_out_queries"]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _ms(values: list[float]) -> tuple[float, float]:
    return round(1000 * statistics.median(values), 2), round(1000 * _percentile(values, 0.95), 2)


def held_out_queries(n: int, seed: int = 0, episodes: int = 40) -> list[tuple[str, str, str]]:
    """``n`` (step context, task type, the expert's action there) decision points of expert episodes on
    ``valid_seen`` tasks: tasks that are not in the store, as in-context distillation meets them."""
    from agentkd.store.records import step_context
    from environments.household import load_split

    rng = random.Random(seed)
    held_out = [play_expert(task) for task in rng.sample(load_split("valid_seen"), episodes)]
    picks = []
    for _ in range(n):
        traj = rng.choice(held_out)
        position = rng.randrange(traj.num_steps)
        context = step_context(traj.goal, traj.steps[:position], traj.steps[position].observation)
        picks.append((context, traj.task_type, traj.steps[position].action))
    return picks


def _make(name: str, embed_device: str, precision: str) -> Any:
    """A cache-less embedding function (each upsert still embeds a repeated text once)."""
    if name == "minilm":
        from agentkd.store.embedder import MiniLMEmbeddingFunction

        return MiniLMEmbeddingFunction(device=embed_device, precision=precision, cache_size=0)
    if name == "static":
        from agentkd.store.static import StaticEmbeddingFunction

        return StaticEmbeddingFunction(cache_size=0)
    raise ValueError(f"unknown embedder {name!r}; choose minilm or static")


def _timed_encode(embedder: Any) -> Callable[[], float]:
    """Wrap the embedder's model call; returns a function giving the seconds spent in it so far."""
    inner = embedder.encode
    spent = [0.0]

    def timed(texts: list[str]) -> Any:
        start = time.perf_counter()
        try:
            return inner(texts)
        finally:
            spent[0] += time.perf_counter() - start

    embedder.encode = timed
    return lambda: spent[0]


def _bench_one(
    embedder: Any,
    trajectories: list[Trajectory],
    picks: list[tuple[str, str]],
    path: Path,
    spool: Path,
    batch_steps: int,
) -> dict[str, Any]:
    from agentkd.store.store import ExperienceStore

    store = ExperienceStore(path, embedding_function=embedder, spool_dir=spool)
    embedder(["warm-up"])  # load the model outside the timed part
    embedder.encoded_texts = 0
    embed_time = _timed_encode(embedder)
    steps = 0
    batch: list[Trajectory] = []
    batch_size = 0
    start = time.perf_counter()
    for traj in trajectories:
        batch.append(traj)
        batch_size += traj.num_steps
        if batch_size >= batch_steps:
            store.upsert(batch)
            steps += batch_size
            batch, batch_size = [], 0
    if batch:
        store.upsert(batch)
        steps += batch_size
    ingest_s = time.perf_counter() - start
    embed_s = embed_time()
    embedded = embedder.encoded_texts

    plain, filtered, embed_ms, search_ms = [], [], [], []
    for text, task_type, _ in picks:
        start = time.perf_counter()
        vectors = store._embed([text])
        middle = time.perf_counter()
        hits = store._query_steps_by_vectors(vectors, 5, {})[0]
        end = time.perf_counter()
        assert hits, "query returned nothing"
        plain.append(end - start)
        embed_ms.append(middle - start)
        search_ms.append(end - middle)
        start = time.perf_counter()
        hits = store.query_steps(text, 5, task_type=task_type)
        filtered.append(time.perf_counter() - start)
        assert hits and all(hit.metadata.get("task_type") == task_type for hit in hits), "filter not applied"
    stored = store.count_steps()
    store.close()
    query_p50, query_p95 = _ms(plain)
    filtered_p50, filtered_p95 = _ms(filtered)
    return {
        "n_steps": steps,
        "stored_steps": stored,
        "ingest_s": round(ingest_s, 2),
        "ingest_steps_per_s": round(steps / ingest_s, 1),
        "embedded_texts": embedded,
        "embed_s": round(embed_s, 2),
        "embed_share": round(embed_s / ingest_s, 3),
        "embed_texts_per_s": round(embedded / embed_s, 1) if embed_s else None,
        "store_only_steps_per_s": round(steps / (ingest_s - embed_s), 1) if ingest_s > embed_s else None,
        "query_p50_ms": query_p50,
        "query_p95_ms": query_p95,
        "query_embed_p50_ms": _ms(embed_ms)[0],
        "query_search_p50_ms": _ms(search_ms)[0],
        "filtered_query_p50_ms": filtered_p50,
        "filtered_query_p95_ms": filtered_p95,
        "precision": getattr(embedder, "resolved_precision", None),
    }


def bench_store(
    n_steps: int,
    queries: int = 200,
    path: str | Path | None = None,
    *,
    embedders: Sequence[str] = ("static", "minilm"),
    max_steps: dict[str, int] | None = None,
    compare_contexts: int = 20_000,
    compare_queries: int = 500,
    batch_steps: int = 2048,
    embed_device: str = "cpu",
    precision: str = "auto",
    seed: int = 0,
    on_stage: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Ingest about ``n_steps`` expert steps into a fresh store per embedder, then time ``queries`` queries.

    Ingest is timed end to end (step contexts, embedding, Chroma writes) in upserts of about
    ``batch_steps`` steps, with the model's share (``embed_share``). Queries are held-out step
    contexts (:func:`held_out_queries`), timed unfiltered (split into embedding and search) and with a
    ``task_type`` filter. ``max_steps`` caps an embedder's ingest (``{"minilm": 20_000}``: the slow
    one at a stated smaller size). ``path`` is a folder for the stores (default: a temporary one,
    removed afterwards). ``compare_contexts`` > 0 adds :func:`compare_embedders` on that many step
    contexts. Prints nothing; returns ``{"embedders": {name: figures}, "comparison": ...}``.
    """
    stage = on_stage or (lambda text: None)
    tmp = tempfile.mkdtemp(prefix="agentkd-bench-store-")
    root = Path(path) if path is not None else Path(tmp)
    try:
        t0 = time.perf_counter()
        stage(f"playing expert episodes for {n_steps:,} steps")
        trajectories = list(expert_trajectories(n_steps))
        generate_s = time.perf_counter() - t0
        picks = held_out_queries(queries, seed=seed)
        result: dict[str, Any] = {"generate_s": round(generate_s, 2), "queries": queries, "embedders": {}}
        for name in embedders:
            cap = (max_steps or {}).get(name)
            chosen, total = trajectories, 0
            if cap is not None and cap < n_steps:
                chosen = []
                for traj in trajectories:
                    if total >= cap:
                        break
                    chosen.append(traj)
                    total += traj.num_steps
            stage(f"{name}: ingesting {sum(t.num_steps for t in chosen):,} steps")
            embedder = _make(name, embed_device, precision)
            result["embedders"][name] = _bench_one(
                embedder, chosen, picks, root / f"store-{name}", Path(tmp) / "spool", batch_steps
            )
        if compare_contexts > 0 and len(embedders) > 1:
            contexts = _contexts(trajectories, compare_contexts)
            stage(f"comparing embedders on {len(contexts[0]):,} distinct contexts of {compare_contexts:,} steps")
            result["comparison"] = compare_embedders(
                *contexts,
                held_out_queries(compare_queries, seed=seed + 1),
                {name: _make(name, embed_device, precision) for name in embedders},
                steps=compare_contexts,
            )
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _contexts(trajectories: list[Trajectory], n_steps: int) -> tuple[list[str], list[str], list[str]]:
    """The distinct step contexts of the first ``n_steps`` steps, with their task types and actions."""
    from agentkd.store.records import steps_of

    seen: dict[str, tuple[str, str]] = {}
    count = 0
    for traj in trajectories:
        for step, context in steps_of(traj):
            if count >= n_steps:
                break
            seen.setdefault(context, (traj.task_type, step.action))
            count += 1
    return list(seen), [kind for kind, _ in seen.values()], [action for _, action in seen.values()]


def _top(matrix: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    scores = queries @ matrix.T
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def compare_embedders(
    texts: list[str],
    task_types: list[str],
    actions: list[str],
    queries: list[tuple[str, str, str]],
    embedders: dict[str, Any],
    *,
    reference: str = "minilm",
    k: int = 5,
    demos: int = 3,
    steps: int | None = None,
) -> dict[str, Any]:
    """Every embedder on the same ``texts``: texts/s, and agreement with the ``reference`` embedder.

    ``recall_at_k``: the mean share of the reference's ``k`` nearest texts (cosine, exact search)
    that an embedder also puts in its ``k`` nearest, for each held-out query. ``demo_agreement``:
    the same for the top ``demos`` texts of the query's task type (what in-context distillation
    shows), and ``first_demo_same``: how often the first demonstration is the same text. Measured
    against the expert instead of another embedder: ``demo_action`` is how often the first
    demonstration's action is the expert's action at the query, ``demo_verb`` how often its verb
    (go, take, open, ...) is.
    """
    vectors: dict[str, np.ndarray] = {}
    query_vectors: dict[str, np.ndarray] = {}
    figures: dict[str, Any] = {}
    for name, embedder in embedders.items():
        embedder.encode(texts[:16])  # load the model outside the timed part
        start = time.perf_counter()
        vectors[name] = np.stack(embedder.encode(texts))
        seconds = time.perf_counter() - start
        query_vectors[name] = np.stack(embedder.encode([text for text, _, _ in queries]))
        figures[name] = {
            "texts_per_s": round(len(texts) / seconds, 1),
            "embed_s": round(seconds, 2),
            "dims": int(vectors[name].shape[1]),
        }
    kinds = np.array(task_types)
    allowed = np.array([kind for _, kind, _ in queries])[:, None] == kinds[None, :]
    expert = [action for _, _, action in queries]
    for name in vectors:
        shown = [actions[i] for i in _top(vectors[name], query_vectors[name], 1, allowed)[:, 0]]
        same = [a == b for a, b in zip(shown, expert, strict=True)]
        same_verb = [a.split()[:1] == b.split()[:1] for a, b in zip(shown, expert, strict=True)]
        figures[name]["demo_action"] = round(float(np.mean(same)), 3)
        figures[name]["demo_verb"] = round(float(np.mean(same_verb)), 3)
    if reference in vectors:
        ref_top = _top(vectors[reference], query_vectors[reference], k)
        ref_demo = _top(vectors[reference], query_vectors[reference], demos, allowed)
        for name in vectors:
            top = _top(vectors[name], query_vectors[name], k)
            demo = _top(vectors[name], query_vectors[name], demos, allowed)
            figures[name]["recall_at_k"] = round(
                float(np.mean([len(set(a) & set(b)) / k for a, b in zip(top, ref_top, strict=True)])), 3
            )
            figures[name]["demo_agreement"] = round(
                float(np.mean([len(set(a) & set(b)) / demos for a, b in zip(demo, ref_demo, strict=True)])), 3
            )
            figures[name]["first_demo_same"] = round(float(np.mean(demo[:, 0] == ref_demo[:, 0])), 3)
    return {
        "steps": steps,
        "texts": len(texts),
        "queries": len(queries),
        "k": k,
        "demos": demos,
        "reference": reference,
        "embedders": figures,
    }
