"""Running evaluations: a student under several configurations, on one or more splits, into the store.

A configuration is written like ``greedy``, ``sc@8`` (self-consistency, 8 samples), ``sc@8+icd``
(with retrieved teacher steps), ``sc@8+cascade@0.5`` (defer to the teacher below 50%
agreement), ``greedy+principles`` (retrieved principles in the prompt: the ablation switch) or
``sc@8+constrained`` (the action line decoded through a trie of the admissible actions), with
``+noloop`` (the student avoids actions already taken from the same observation) and ``+retry``
(hotter rounds of samples where none names an admissible action).
All episodes of a configuration run at once: each
is its own LangGraph episode, and a batching policy turns their requests into one engine call per
step. Evaluated trajectories are stored marked ``evaluation`` (so they never feed training or
retrieval); a re-run with the same student finds them there and plays only what is missing.
Deferred steps are also stored as one-step teacher demonstrations.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkd.errors import ConfigError
from agentkd.eval.metrics import ConfigResult, EvalResults
from agentkd.schema import PolicyInfo, Step, Task, Trajectory, trajectory_id

if TYPE_CHECKING:  # pragma: no cover
    from agentkd.store import ExperienceStore

__all__ = ["EvalConfig", "MemoryStore", "evaluate", "evaluate_with_report", "parse_configs"]

#: ``+retry``: rounds of hotter samples (StudentPolicy's ``retry``).
RETRY_ROUNDS = 2
_CONFIG = re.compile(r"^(greedy|sc@(\d+))((?:\+icd|\+cascade@[0-9.]+|\+principles|\+constrained|\+noloop|\+retry)*)$")


@dataclass(frozen=True)
class EvalConfig:
    """One way of running the student."""

    name: str
    samples: int = 1
    icd: bool = False
    cascade: float | None = None  # agreement threshold below which a step goes to the teacher
    principles: bool = False  # retrieved principles in the prompt (of the teacher too, under a cascade)
    constrained: bool = False  # admissible-constrained action decoding
    noloop: bool = False  # the student avoids actions already taken from the same observation
    retry: bool = False  # hotter rounds of samples where no sample names an admissible action
    teacher: bool = False  # the teacher itself plays (the reference row)

    def describe(self) -> str:
        if self.teacher:
            return "the teacher itself (reference)"
        parts = ["greedy decoding" if self.samples == 1 else f"self-consistency, {self.samples} samples"]
        if self.icd:
            parts.append("retrieved teacher steps in the prompt")
        if self.cascade is not None:
            parts.append(f"deferring to the teacher below {self.cascade:.0%} agreement or on a revisit")
        if self.principles:
            parts.append("retrieved principles in the prompt")
        if self.constrained:
            parts.append("actions constrained to the admissible ones")
        if self.noloop:
            parts.append("avoiding actions already taken from the same observation")
        if self.retry:
            parts.append(f"resampling hotter (up to {RETRY_ROUNDS} rounds) where no sample is admissible")
        return ", ".join(parts)

    def student_options(self) -> dict[str, Any]:
        """How the student decodes under this configuration: StudentPolicy's keyword arguments."""
        return {"samples": self.samples, "constrained": self.constrained, "noloop": self.noloop,
                "retry": RETRY_ROUNDS if self.retry else 0}


def parse_configs(spec: str | Sequence[str]) -> list[EvalConfig]:
    """``"greedy,sc@8,sc@8+cascade@0.5"`` → configurations (names kept as written)."""
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    configs = []
    for name in names:
        if name == "teacher":
            configs.append(EvalConfig(name=name, teacher=True))
            continue
        match = _CONFIG.match(name)
        if match is None:
            raise ConfigError(f"unknown configuration {name!r}: write greedy or sc@K, optionally followed "
                             "by +icd, +cascade@THRESHOLD, +principles, +constrained, +noloop and/or +retry "
                             "(e.g. sc@8+cascade@0.5), "
                             "or teacher (the reference row)")
        k, extras = match.group(2), match.group(3)
        cascade = re.search(r"\+cascade@([0-9.]+)", extras)
        configs.append(EvalConfig(name=name, samples=int(k) if k else 1, icd="+icd" in extras,
                                  cascade=float(cascade.group(1)) if cascade else None,
                                  principles="+principles" in extras, constrained="+constrained" in extras,
                                  noloop="+noloop" in extras, retry="+retry" in extras))
    if not configs:
        raise ConfigError("no configuration given")
    return configs


def _policy_only(config: EvalConfig, policy: Any) -> Any:
    """A student that is a policy (a chat model behind an API) plays ``greedy`` only: sampling, votes,
    constrained decoding, demonstrations and the cascade need a local model's tokens."""
    if config.name != "greedy":
        raise ConfigError(f"{config.name}: a chat-model student is evaluated as greedy (its own answers) or beside "
                         "the teacher; sc@K and the + options need a local student (a directory or model name)")
    return policy


def _policy(config: EvalConfig, engine: Any, teacher: Any, store: Any, env: str, max_new_tokens: int) -> Any:
    from agentkd.distill.demos import DemoRetriever
    from agentkd.replay.cascade import CascadePolicy
    from agentkd.replay.policy import StudentPolicy

    if config.teacher:
        return teacher
    demos = None
    if config.icd:
        if store is None:
            raise ConfigError("in-context distillation (+icd) needs a store with teacher steps: pass --store")
        demos = DemoRetriever(store, env, count_tokens=lambda text: len(engine.encode(text)))  # teacher steps on train
    policy = StudentPolicy(engine, max_new_tokens=max_new_tokens, demos=demos, **config.student_options())
    if config.cascade is not None:
        policy = CascadePolicy(policy, teacher, config.cascade)
    if config.principles:
        from agentkd.distill.principles import PrincipleRetriever, PrinciplesPolicy

        if store is None:
            raise ConfigError("+principles needs a store with principles: pass --store")
        retriever = PrincipleRetriever(store, env, count_tokens=lambda text: len(engine.encode(text)))
        policy = PrinciplesPolicy(policy, retriever)  # outermost: a deferred step's teacher sees them too
    return policy


def _first_per_type(tasks: list[Task], n: int) -> list[Task]:
    """The first ``n`` tasks of each task type, in the split's order."""
    counts: Counter[str] = Counter()
    kept = []
    for task in tasks:
        counts[task.task_type] += 1
        if counts[task.task_type] <= n:
            kept.append(task)
    return kept


def _demonstrations(trajectories: list[Trajectory], teacher: PolicyInfo, tasks: dict[str, Task]) -> list[Trajectory]:
    """Each deferred step as a one-step teacher trajectory (what the teacher did in that state)."""
    demos = []
    for traj in trajectories:
        for step in traj.steps:
            if not step.deferred or not step.valid:
                continue
            info = PolicyInfo(kind=teacher.kind, name=teacher.name,
                              params={**teacher.params, "deferred_from": traj.trajectory_id, "step": step.index})
            task = tasks[traj.task_id]
            demo = Trajectory.start(task, info, seed=traj.seed, source="cascade")
            demo.trajectory_id = trajectory_id(task.task_id, info, traj.seed)
            demo.steps = [Step(index=0, observation=step.observation, thought=step.thought, action=step.action,
                               next_observation=step.next_observation, reward=step.reward, done=step.done,
                               admissible_actions=step.admissible_actions)]
            demo.finish(success=traj.success, reward=traj.reward)
            demos.append(demo)
    return demos


def evaluate(
    student: str | Path | Any,
    configs: Sequence[EvalConfig],
    *,
    env: str = "household",
    splits: Sequence[str] = ("valid_unseen",),
    store: ExperienceStore | None = None,
    teacher: Any = None,
    max_steps: int | None = None,
    max_tasks: int | None = None,
    per_type: int | None = None,
    max_new_tokens: int | None = None,
    workers: int = 16,
    on_episode: Callable[[str, str, Trajectory], None] | None = None,
    on_config: Callable[[str, str, int], None] | None = None,
    trajectories: list[Trajectory] | None = None,
) -> EvalResults:
    """Play every split's tasks once per configuration; returns the results (also in the store, if any).

    Args:
        student: a student directory, a :class:`~agentkd.replay.engine.ReplayEngine`, or any policy (e.g. a
            :class:`~agentkd.policies.chat.ChatModelPolicy` over an API model: the ceiling row, greedy only).
        teacher: the teacher policy, for the cascade and the ``teacher`` row (default: the environment's expert).
        max_tasks: evaluate the first ``max_tasks`` tasks of each split only.
        per_type: evaluate the first ``per_type`` tasks of each task type only (a balanced subset: the
            first tasks of a split are not spread evenly over its types); with ``max_tasks``, this comes first.
        max_steps, max_new_tokens: an episode's step limit and a reply's token cap (default: the
            environment's, see :class:`agentkd.env.EnvSpec`).
        workers: episodes played at once (their steps share one batched forward pass; each holds its
            prompt's cache, so this bounds the memory: 16 long household episodes of the 135M student
            take a few GB, 48 overflowed 24 GB).
        on_episode: called with (config name, split, trajectory) after each episode.
        on_config: called with (config name, split, number of episodes) before a configuration starts.
        trajectories: if given, every evaluated trajectory (played now or found in the store) is appended to it.

    Example::

        results = evaluate("runs/sft", parse_configs("greedy,sc@8+constrained,sc@8+cascade@0.5,teacher"),
                           store=ExperienceStore("trajectories/store"), max_tasks=24, max_steps=50)
        {c.name: c.metrics.overall.success_rate for c in results.configs}
    """
    from agentkd.collection import collect_async, plan_episodes
    from agentkd.envs import get_spec
    from agentkd.policies.expert import ExpertPolicy
    from agentkd.replay.engine import ReplayEngine
    from agentkd.splits import split_name

    spec = get_spec(env)
    loaded = {source: spec.load_split(source) for source in splits}  # bad splits fail before the model loads
    if isinstance(student, ReplayEngine | str | Path):
        engine, student_policy = (student if isinstance(student, ReplayEngine) else ReplayEngine(student)), None
    else:  # a policy: it answers through its own model
        engine, student_policy = None, student
    max_steps = max_steps or spec.max_steps
    max_new_tokens = max_new_tokens or spec.max_new_tokens
    teacher = teacher or ExpertPolicy(env)

    student_name = engine.name if engine is not None else student_policy.info.name
    results = EvalResults(metadata={"student": student_name, "env": env, "teacher": teacher.info.name,
                                    "max_steps": max_steps})
    scratch = None
    if store is None:  # collect_async writes as it goes; without a store, keep episodes in memory
        scratch = MemoryStore()
    for source, tasks in loaded.items():
        split = split_name(source)  # a path's tasks carry its name (what the report and the store show)
        # Report columns, in order: a named split lists all of its environment's types, even without episodes.
        task_types = list(spec.task_types) if source in spec.splits else []
        if per_type is not None:
            tasks = _first_per_type(tasks, per_type)
        if max_tasks is not None:
            tasks = tasks[:max_tasks]
        by_id = {t.task_id: t for t in tasks}
        for config in configs:
            policy = (_policy(config, engine, teacher, store, env, max_new_tokens) if engine is not None
                      else teacher if config.teacher else _policy_only(config, student_policy))
            played: list[Trajectory] = []

            def record(traj: Trajectory, name: str = config.name, split: str = split,
                       played: list[Trajectory] = played) -> None:
                traj.metadata["evaluation"] = name  # before the writer stores it
                played.append(traj)
                if on_episode is not None:
                    on_episode(name, split, traj)

            if on_config is not None:
                on_config(config.name, split, len(tasks))
            target = store if store is not None else scratch
            plan = plan_episodes(tasks, len(tasks))
            # Each running episode holds its prompt's cache (46 KB a token for the 135M student in float32):
            # `workers` bounds the memory, and the engine keeps no more prefixes than there are episodes running.
            if engine is not None:
                engine.max_cached = min(len(tasks), workers)
            # flush_every=1: an evaluated episode costs seconds to minutes of generation and its write a few
            # milliseconds, so each is stored as it finishes; a killed evaluation (out of memory, the end of a
            # session) loses only the episodes still playing, and the re-run plays only those.
            # An embedded store keeps the running episodes' journals: a stopped evaluation's long episodes resume
            # from their last step (a student's 50-step episode takes an hour on a CPU).
            journal = target.path / "journal" if getattr(target, "path", None) is not None else None
            asyncio.run(collect_async(policy, env, plan, target, workers=min(len(tasks), workers), flush_every=1,
                                      max_steps=max_steps, on_episode=record, tags=("eval", config.name),
                                      metadata={"configuration": config.name, "student": student_name},
                                      journal=journal))
            if engine is not None:
                engine.clear()  # these episodes are over
            ids = [trajectory_id(t.task_id, policy.info, 0) for t in tasks]
            fresh = {t.trajectory_id for t in played}
            earlier = [target.get(i) for i in ids if i not in fresh]  # stored by an earlier run of this config
            evaluated = played + [t for t in earlier if t is not None]
            if trajectories is not None:
                trajectories.extend(evaluated)
            if store is not None and config.cascade is not None:
                store.upsert(_demonstrations(played, teacher.info, by_id))
            result = ConfigResult.from_trajectories(
                config.name, evaluated, split=split, description=config.describe(),
                params=dict(policy.info.params), task_types=task_types)
            result.env = env
            results.configs.append(result)
    return results


def evaluate_with_report(console: Any, student: str | Path | Any, configs: Sequence[EvalConfig],
                         splits: Sequence[str], store: ExperienceStore | None, out: str | Path, *, merge: bool = False,
                         **kwargs: Any) -> EvalResults:
    """:func:`evaluate` with a rich progress bar per configuration, then ``results.json``, ``report.md``,
    the plots and ``episodes.html`` (every episode's transcript, one file that opens without a server)
    written into ``out`` and the summary table printed (the CLI's and the demo's view).

    With ``merge``, results already in ``out`` (e.g. another environment's) stay in the report unless
    this run evaluated the same configuration on the same split; their episodes are in ``episodes.html``
    when ``store`` still holds them.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agentkd.eval.report import format_table, write_report

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("success {task.fields[rate]}"), TimeElapsedColumn(), console=console,
                        disable=not console.is_terminal)
    bars: dict[tuple[str, str], Any] = {}
    wins: dict[tuple[str, str], list[int]] = {}

    def on_config(name: str, split: str, total: int) -> None:
        bars[(name, split)] = progress.add_task(f"{name} on {split}", total=total, rate="-")
        wins[(name, split)] = [0, 0, total]
        if not console.is_terminal:  # logs see each configuration start
            print(f"evaluating {name} on {split} ({total} episodes)", flush=True)

    def on_episode(name: str, split: str, trajectory: Trajectory) -> None:
        won = wins[(name, split)]
        won[0] += trajectory.success
        won[1] += 1
        progress.update(bars[(name, split)], advance=1, rate=f"{won[0] / won[1]:.0%}")
        if not console.is_terminal:  # a log of a long run shows its progress too
            outcome = "solved" if trajectory.success else "failed"
            print(f"{name} on {split}: {won[1]}/{won[2]} episodes, {won[0]} solved ({outcome} "
                  f"{trajectory.task_id} in {len(trajectory.steps)} steps; memory {_memory_gb():.1f} GB)",
                  flush=True)

    from agentkd.view.render import EPISODES_FILENAME, write_episodes
    from agentkd.view.summary import principle_texts

    episodes: list[Trajectory] = []
    with progress:
        results = evaluate(student, configs, splits=splits, store=store, on_episode=on_episode, on_config=on_config,
                           trajectories=episodes, **kwargs)
    if merge and (Path(out) / "results.json").is_file():
        earlier = EvalResults.load(out)
        fresh = {(c.name, c.group) for c in results.configs}
        kept = [c for c in earlier.configs if (c.name, c.group) not in fresh]
        results.configs = kept + results.configs
        if store is not None:
            found = (store.get(e.trajectory_id) for c in kept for e in c.episodes if e.trajectory_id)
            episodes = [t for t in found if t is not None] + episodes
    results.save(out)
    write_episodes(episodes, Path(out) / EPISODES_FILENAME, principles=principle_texts(store, episodes),
                   title=f"agentkd episodes: {results.metadata.get('student', 'evaluation')}")
    report = write_report(results, out, episodes=EPISODES_FILENAME)
    console.print(format_table(results))
    console.print(f"report: {report}")
    return results


def _memory_gb() -> float:
    """The process's resident memory (its peak where /proc is missing): long evaluations log it, so growth
    shows before the machine swaps."""
    import os
    import resource
    import sys

    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
        return peak / (2**30 if sys.platform == "darwin" else 2**20)


class MemoryStore:
    """What ``collect_async`` needs from a store, in memory (evaluations run without one): a
    :class:`~agentkd.store.TrajectoryStore`."""

    def __init__(self) -> None:
        self.items: dict[str, Trajectory] = {}

    def has(self, ids: Any) -> set[str]:
        return {i for i in ids if i in self.items}

    def upsert(self, trajectories: Any) -> int:
        batch = [trajectories] if isinstance(trajectories, Trajectory) else list(trajectories)
        self.items.update((t.trajectory_id, t) for t in batch)
        return len(batch)

    def get(self, trajectory_id: str) -> Trajectory | None:
        return self.items.get(trajectory_id)
