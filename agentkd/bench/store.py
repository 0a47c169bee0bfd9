"""Experience-store benchmark: ingest rate and query latency on real household expert steps.

    from agentkd.bench.store import bench_store
    bench_store(20_000)   # {"ingest_steps_per_s": ..., "query_p50_ms": ..., ...}

Trajectories come from playing the household expert on ``train`` tasks (one pass over the tasks
gives about 36,000 distinct steps); past that, episodes are reused under new ids (another seed),
as a long recording of the same tasks would. The benchmark's embedder keeps no cache, so every
stored step is embedded and the ingest rate is not flattered by the repeats; ``embedded_texts``
reports how many texts the model actually encoded.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from agentkd.schema import Trajectory

from .episodes import expert_trajectories, play_expert

__all__ = ["bench_store"]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def bench_store(
    n_steps: int,
    queries: int = 200,
    path: str | Path | None = None,
    *,
    batch_steps: int = 2048,
    embedding_function: Any = None,
    precision: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """Ingest about ``n_steps`` expert steps into a fresh store, then time ``queries`` step queries.

    Ingest is timed end to end (step contexts, embedding, Chroma writes) in upserts of about
    ``batch_steps`` steps; the model's share (``embed_s``) is measured too.
    Queries are the step contexts of expert episodes on ``valid_seen`` tasks — decision points of
    tasks that are not in the store, as in-context distillation meets them — each embedded and
    searched with a ``task_type`` filter; the latency is split into embedding and search, and
    the same queries are also sent as one batch (:meth:`ExperienceStore.query_steps_many`).
    ``path`` is the store folder or server URL (default: a temporary folder, removed afterwards);
    ``embedding_function`` defaults to the MiniLM embedder at ``precision`` without a cache, so
    every step and every query pays for its embedding. Prints nothing; returns a dict of the figures.
    """
    from agentkd.store.embedder import MiniLMEmbeddingFunction
    from agentkd.store.store import ExperienceStore, step_context
    from environments.household import load_split

    tmp = None
    if path is None:
        tmp = tempfile.mkdtemp(prefix="agentkd-bench-store-")
        path = Path(tmp) / "store"
    if embedding_function is None:
        embedding_function = MiniLMEmbeddingFunction(precision=precision, cache_size=0)
    try:
        t0 = time.perf_counter()
        trajectories = list(expert_trajectories(n_steps))
        generate_s = time.perf_counter() - t0
        store = ExperienceStore(path, embedding_function=embedding_function, spool_dir=Path(tmp or ".") / "spool")
        embedder = store.embedding_function
        embed_s = 0.0
        embedded = 0
        inner = embedder.encode if hasattr(embedder, "encode") else None
        if inner is not None:  # time the model separately from the store

            def timed(texts: list[str]) -> Any:
                nonlocal embed_s, embedded
                start = time.perf_counter()
                try:
                    return inner(texts)
                finally:
                    embed_s += time.perf_counter() - start
                    embedded += len(texts)

            embedder.encode = timed
        embedder(["warm-up"])  # load the model outside the timed part
        embed_s, embedded = 0.0, 0
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
        if inner is not None:
            embedder.encode = inner

        rng = random.Random(seed)
        held_out = [play_expert(task) for task in rng.sample(load_split("valid_seen"), 40)]
        picks = []
        for _ in range(queries):
            traj = rng.choice(held_out)
            position = rng.randrange(traj.num_steps)
            text = step_context(traj.goal, traj.steps[:position], traj.steps[position].observation)
            picks.append((text, traj.task_type))
        total, embed_ms, search_ms = [], [], []
        for text, task_type in picks:
            start = time.perf_counter()
            vectors = store._embed([text])
            middle = time.perf_counter()
            hits = store._query_steps_by_vectors(vectors, 5, {"task_type": task_type})[0]
            end = time.perf_counter()
            assert hits, "query returned nothing"
            total.append(end - start)
            embed_ms.append(middle - start)
            search_ms.append(end - middle)
        task_type = picks[0][1]
        same_filter = [text for text, kind in picks if kind == task_type]
        start = time.perf_counter()
        store.query_steps_many(same_filter, k=5, task_type=task_type)
        batched_s = time.perf_counter() - start
        result = {
            "n_steps": steps,
            "trajectories": len(trajectories),
            "stored_steps": store.count_steps(),
            "generate_s": round(generate_s, 2),
            "ingest_s": round(ingest_s, 2),
            "ingest_steps_per_s": round(steps / ingest_s, 1),
            "embedded_texts": embedded,
            "embed_s": round(embed_s, 2),
            "embed_texts_per_s": round(embedded / embed_s, 1) if embed_s else None,
            "store_only_steps_per_s": round(steps / (ingest_s - embed_s), 1) if ingest_s > embed_s else None,
            "queries": queries,
            "query_p50_ms": round(1000 * statistics.median(total), 2),
            "query_p95_ms": round(1000 * _percentile(total, 0.95), 2),
            "query_embed_p50_ms": round(1000 * statistics.median(embed_ms), 2),
            "query_search_p50_ms": round(1000 * statistics.median(search_ms), 2),
            "query_search_p95_ms": round(1000 * _percentile(search_ms, 0.95), 2),
            "batched_queries": len(same_filter),
            "batched_ms_per_query": round(1000 * batched_s / len(same_filter), 2),
            "precision": getattr(embedder, "resolved_precision", None),
            "location": str(path),
        }
        store.close()
        return result
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
