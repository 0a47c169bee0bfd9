"""Trajectory collection: run a teacher on a split, concurrently, into an experience store.

Episode `i` of a run plays task `i % len(split)` with seed `i // len(split)`, so a run is fully
described by its arguments and every trajectory id is deterministic (task + policy + seed). A
restarted run asks the store which of its ids already exist and plays only the others: a run killed
at any point (even with SIGKILL) and started again ends with exactly the requested trajectories,
none lost and none duplicated. Finished trajectories are written in batches from a background
thread while episodes keep playing; a batch that cannot reach a Chroma server is spooled to JSONL
by the store and imported by the next run.

Scaling out: ``shard=(i, n)`` plays every n-th episode of the plan starting at i, so n processes
with the same arguments and shards 0..n-1 play disjoint episodes into one Chroma server and end
with exactly the requested trajectories. An episode whose teacher call fails is recorded in the
summary and the run goes on, up to ``max_failures``; an authentication or quota error stops it at
once (every other episode would fail the same way).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkd.agents.env_agent import BatchingPolicy, build_env_agent, run_episode
from agentkd.agents.journal import EpisodeJournal
from agentkd.envs import load_tasks, make_env
from agentkd.errors import AgentKDError, ConfigError
from agentkd.policies.base import Policy
from agentkd.schema import Task, Trajectory, trajectory_id
from agentkd.store.protocol import TrajectoryStore


class CollectionAborted(AgentKDError):
    """The teacher cannot go on (authentication, quota) or too many episodes failed."""


@dataclass(frozen=True)
class EpisodeFailure:
    task_id: str
    seed: int
    error: str  # "ExceptionType: message", one line


@dataclass
class CollectSummary:
    requested: int
    already_stored: int
    played: int = 0
    succeeded: int = 0
    steps: int = 0
    wall_time_s: float = 0.0
    stored_total: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    failures: list[EpisodeFailure] = field(default_factory=list)

    @property
    def episodes_per_s(self) -> float:
        return self.played / self.wall_time_s if self.wall_time_s else 0.0

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_time_s if self.wall_time_s else 0.0


def plan_episodes(tasks: list[Task], episodes: int, shard: tuple[int, int] = (0, 1)) -> list[tuple[Task, int]]:
    """Episode i → (task i mod n, seed i div n): the first n episodes cover the split once.

    ``shard=(k, count)`` keeps the episodes with ``i % count == k``: shards of one plan are disjoint
    and together are the whole plan."""
    if not tasks:
        raise ConfigError("the split has no tasks")
    k, count = shard
    if count < 1 or not 0 <= k < count:
        raise ConfigError(f"shard {k}/{count}: need 0 <= k < count")
    return [(tasks[i % len(tasks)], i // len(tasks)) for i in range(k, episodes, count)]


def parse_shard(text: str) -> tuple[int, int]:
    """``"k/n"`` → ``(k, n)``, e.g. ``--shard 0/4``."""
    try:
        k, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: write it as K/N, e.g. 0/4 (shard K of N, counting from 0)") from None
    if count < 1 or not 0 <= k < count:
        raise ConfigError(f"--shard {text!r}: need 0 <= K < N")
    return k, count


_FATAL = {"AuthenticationError", "PermissionDeniedError"}  # openai / anthropic client errors


def is_fatal(exc: BaseException) -> bool:
    """Errors every later call would hit too: bad credentials, no permission, exhausted quota."""
    names = {cls.__name__ for cls in type(exc).__mro__}  # LangChain subclasses them (OpenAIAuthenticationError)
    return bool(names & _FATAL) or ("RateLimitError" in names and "quota" in str(exc).lower())


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def resolve_teacher(spec: str, env_name: str, *, first_thought: bool = False, temperature: float = 0.0,
                    max_new_tokens: int = 128, prices: str | None = None, mistake_rate: float = 0.0,
                    slip_lookahead: int = 0) -> Policy:
    """`expert`, `openai:MODEL` (any OpenAI-compatible endpoint, e.g. vLLM, via OPENAI_BASE_URL),
    `provider:MODEL` (any LangChain chat model ``init_chat_model`` knows, e.g. `anthropic:claude-...`), or a
    local Hugging Face model directory / hub name / packaged student. ``mistake_rate``: the expert's
    deliberate, recovered mistakes (``slip_lookahead``: also its next moves taken too early).

    Example::

        teacher = resolve_teacher("openai:gpt-4o-mini", "household", max_new_tokens=256)
        teacher.act([...])   # one batched call for several episodes' states
    """
    if (mistake_rate or slip_lookahead) and spec != "expert":
        raise ConfigError("--mistake-rate and --slip-lookahead apply to the expert teacher")
    if spec == "expert":
        from agentkd.policies.expert import ExpertPolicy

        return ExpertPolicy(env_name, mistake_rate=mistake_rate, lookahead=slip_lookahead)
    if chat_spec(spec):
        from agentkd.policies.chat import ChatModelPolicy, init_chat

        model = init_chat(spec, temperature=temperature, max_tokens=max_new_tokens)
        return ChatModelPolicy(model, first_thought=first_thought, prices=prices)
    from agentkd.policies.hf import HFPolicy

    if first_thought:
        raise ConfigError("--first-thought applies to chat-model teachers (openai:MODEL)")
    return HFPolicy(spec, max_new_tokens=max_new_tokens, temperature=temperature)


_STUDENT_SCHEMES = {"gguf", "tiny"}  # `gguf:PATH`, `tiny:small`: local students (agentkd.models), not providers


def chat_spec(spec: str) -> bool:
    """``provider:model`` names a LangChain chat model; students (``gguf:PATH``, ``tiny:small``), paths and hub
    names do not."""
    provider, sep, _ = spec.partition(":")
    return bool(sep) and provider.isidentifier() and provider not in _STUDENT_SCHEMES and not Path(spec).exists()


class _Writer:
    """Upserts finished trajectories in batches from a background task while episodes keep playing.

    Episodes are much faster than embedding their steps, so `add` waits once `backlog` trajectories
    are pending: a crash then loses at most that many finished episodes (the next run replays them).
    """

    def __init__(self, store: TrajectoryStore, flush_every: int, on_stored: Callable[[int], None],
                 backlog_batches: int = 4, journal: EpisodeJournal | None = None):
        self.store = store
        self.journal = journal  # a stored trajectory's journal is deleted
        self.flush_every = flush_every
        self.backlog = flush_every * backlog_batches
        self.on_stored = on_stored
        self.pending: list[Trajectory] = []
        self.flushing: asyncio.Task | None = None

    async def add(self, trajectory: Trajectory) -> None:
        self.pending.append(trajectory)
        if len(self.pending) >= self.flush_every and (self.flushing is None or self.flushing.done()):
            self.flushing = asyncio.create_task(self._drain(full_batches_only=True))
        while len(self.pending) >= self.backlog and self.flushing is not None and not self.flushing.done():
            await asyncio.wait({self.flushing}, timeout=0.05)
        if self.flushing is not None and self.flushing.done():
            self.flushing.result()  # surface a store error (e.g. StoreUnavailable) to the run

    async def _drain(self, full_batches_only: bool) -> None:
        while len(self.pending) >= (self.flush_every if full_batches_only else 1):
            batch, self.pending = self.pending[: self.flush_every], self.pending[self.flush_every:]
            await asyncio.to_thread(self.store.upsert, batch)
            if self.journal is not None:
                for trajectory in batch:
                    self.journal.discard(trajectory.trajectory_id)
            self.on_stored(len(batch))

    async def close(self) -> None:
        """Write everything still pending (also after a failed episode)."""
        if self.flushing is not None:
            await self.flushing
        await self._drain(full_batches_only=False)


async def collect_async(policy: Policy, env_name: str, plan: list[tuple[Task, int]], store: TrajectoryStore, *,
                        workers: int = 8, max_steps: int = 50, flush_every: int = 32, max_failures: int = 10,
                        on_episode: Callable[[Trajectory], None] | None = None,
                        on_stored: Callable[[int], None] | None = None,
                        on_failure: Callable[[EpisodeFailure], None] | None = None,
                        tags: Sequence[str] = ("collect",), metadata: dict[str, Any] | None = None,
                        callbacks: Any = None, journal: str | Path | None = None) -> CollectSummary:
    """Play the planned episodes that the store does not have yet; returns what happened.

    A failing episode is recorded in ``summary.failures`` and the others go on; the run stops with
    :class:`CollectionAborted` after more than ``max_failures`` failures or at the first fatal one
    (:func:`is_fatal`), keeping every finished trajectory. A re-run plays the failed episodes again. Cancelled
    (``asyncio.run`` does that on Ctrl-C), it stops the episodes still playing and writes every finished one first.
    ``tags``, ``metadata`` and ``callbacks`` go to each episode's LangGraph run, for LangSmith or any
    LangChain tracer (:func:`~agentkd.agents.env_agent.trace_config`). With a ``journal`` folder, every step is
    journaled as it is played, so an episode stopped mid-way resumes from its last step when the run is started
    again (:mod:`agentkd.agents.journal`).
    """
    if callable(hold := getattr(store, "hold_writer_lock", None)):
        hold()  # a second process writing into the same store folder fails now, not after playing
    ids = {trajectory_id(task.task_id, policy.info, seed): (task, seed) for task, seed in plan}
    existing = store.has(list(ids))
    todo = [ids[i] for i in ids if i not in existing]
    summary = CollectSummary(requested=len(ids), already_stored=len(existing))
    batching = policy if isinstance(policy, BatchingPolicy) else BatchingPolicy(policy, max_batch=max(1, workers))
    journaled = EpisodeJournal(journal) if journal is not None else None
    if journaled is not None:
        journaled.discard_stored(set(existing))
    writer = _Writer(store, flush_every, on_stored or (lambda n: None), journal=journaled)
    slots = asyncio.Semaphore(max(1, workers))
    started = time.perf_counter()

    async def one(task: Task, seed: int) -> None:
        async with slots:  # held until the writer accepts the trajectory: that bounds the backlog
            env = make_env(env_name, max_steps=max_steps)
            try:
                agent = build_env_agent(env, batching, max_steps=max_steps, journal=journaled)
                trajectory = await run_episode(agent, task, seed=seed, max_steps=max_steps, tags=tags,
                                               metadata={"policy": policy.info.name, **(metadata or {})},
                                               callbacks=callbacks)
            except Exception as exc:
                failure = EpisodeFailure(task.task_id, seed, one_line(exc))
                summary.failures.append(failure)
                if on_failure is not None:
                    on_failure(failure)
                if is_fatal(exc):
                    raise CollectionAborted(f"the teacher {policy.info.name} cannot go on: {failure.error}") from exc
                if len(summary.failures) > max_failures:
                    raise CollectionAborted(
                        f"{len(summary.failures)} episodes failed (more than --max-failures {max_failures}); "
                        f"the last: {failure.error}"
                    ) from exc
                return
            finally:
                if callable(close := getattr(env, "close", None)):  # code environments hold sandboxes
                    close()
            summary.played += 1
            summary.succeeded += trajectory.success
            summary.steps += trajectory.num_steps
            if on_episode is not None:
                on_episode(trajectory)
            await writer.add(trajectory)

    episodes = [asyncio.create_task(one(task, seed)) for task, seed in todo]
    try:
        if episodes:  # the first abort stops the others; their finished trajectories are still written
            done, pending = await asyncio.wait(episodes, return_when=asyncio.FIRST_EXCEPTION)
            for episode in pending:
                episode.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            errors = [episode.exception() for episode in done]  # retrieve them all: asyncio logs unread ones
            first = next((error for error in errors if error is not None), None)
            if first is not None:
                raise first
    except asyncio.CancelledError:  # Ctrl-C or SIGTERM (agentkd.cli): stop playing, then store what finished
        for episode in episodes:
            episode.cancel()
        await asyncio.gather(*episodes, return_exceptions=True)
        raise
    finally:
        await writer.close()  # keep whatever finished, also when the run was aborted
    summary.wall_time_s = time.perf_counter() - started
    summary.batch_sizes = batching.batches
    summary.stored_total = len(store.has(list(ids)))
    return summary


def collect(policy: Policy, env_name: str, split: str, episodes: int, store: TrajectoryStore,
            shard: tuple[int, int] = (0, 1), **kwargs) -> CollectSummary:
    """Synchronous entry point: `episodes` episodes of `split` with `policy` into `store`.

    Example::

        store = ExperienceStore("trajectories/store")
        summary = collect(resolve_teacher("expert", "household"), "household", "train", 200, store, workers=8)
        summary.played, summary.succeeded, summary.failures   # a re-run plays only what is missing
    """
    plan = plan_episodes(load_tasks(env_name, split), episodes, shard)
    return asyncio.run(collect_async(policy, env_name, plan, store, **kwargs))
