"""Trajectories in and out of a store: JSONL files and Hugging Face datasets (on disk or on the Hub).

The functions take what they read or write with (an iterable of trajectories, an upsert callable),
so any store can use them; :class:`~agentkd.store.ExperienceStore` exposes them as
``export_jsonl``, ``import_jsonl`` and ``to_dataset``. :func:`dataset_card` and :func:`push_dataset`
publish a store's tables as a Hugging Face dataset (``agentkd store push``; the tables themselves
are built in :mod:`agentkd.distill.export`, which also writes TRL's conversational format).

Importing this module does not import chromadb, datasets or huggingface_hub.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from agentkd.errors import AgentKDError
from agentkd.schema import SchemaVersionError, Trajectory

from .records import IMPORT_CHUNK, trajectory_metadata

if TYPE_CHECKING:  # pragma: no cover
    import datasets

__all__ = ["BadRecordError", "FileTransfer", "dataset_card", "export_jsonl", "import_jsonl", "parse_jsonl",
           "push_dataset", "save_dataset", "to_dataset", "write_jsonl"]


class BadRecordError(AgentKDError, ValueError):
    """A line of a JSONL file is not a valid trajectory; names the file and the line number."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: not a valid trajectory: {reason}")
        self.path = path
        self.line = line


def parse_jsonl(path: Path) -> Iterator[tuple[int, Trajectory]]:
    """``(line number, trajectory)`` for each non-blank line; a bad line raises :class:`BadRecordError`."""
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, Trajectory.from_json(line)
            except SchemaVersionError as exc:
                raise BadRecordError(path, number, str(exc)) from exc
            except ValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {"msg": str(exc), "loc": ()}
                where = ".".join(str(part) for part in first.get("loc", ())) or "record"
                raise BadRecordError(path, number, f"{where}: {first.get('msg')}") from exc


def write_jsonl(path: str | Path, lines: Iterable[str]) -> int:
    """Write ``lines`` (each one JSON document) to ``path`` atomically, one per line; returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    written = 0
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(line + "\n")
                written += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return written


def export_jsonl(path: str | Path, trajectories: Iterable[Trajectory]) -> int:
    """Write trajectories to ``path`` atomically, one JSON per line; returns the count."""
    return write_jsonl(path, (traj.to_json() for traj in trajectories))


def import_jsonl(path: str | Path, upsert: Callable[[list[Trajectory]], Any]) -> int:
    """Validate a whole JSONL file, then ``upsert`` its trajectories in chunks; returns the count."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such JSONL file: {path}")
    total = sum(1 for _ in parse_jsonl(path))
    chunk: list[Trajectory] = []
    for _, traj in parse_jsonl(path):
        chunk.append(traj)
        if len(chunk) >= IMPORT_CHUNK:
            upsert(chunk)
            chunk = []
    if chunk:
        upsert(chunk)
    return total


def to_dataset(trajectories: Iterable[Trajectory]) -> datasets.Dataset:
    """Trajectories as a Hugging Face ``datasets.Dataset`` (columns: see ``ExperienceStore.to_dataset``)."""
    import datasets

    step_features = {
        "index": datasets.Value("int64"),
        "observation": datasets.Value("string"),
        "thought": datasets.Value("string"),
        "action": datasets.Value("string"),
        "next_observation": datasets.Value("string"),
        "reward": datasets.Value("float64"),
        "done": datasets.Value("bool"),
        "valid": datasets.Value("bool"),
        "deferred": datasets.Value("bool"),
    }
    features = datasets.Features(
        {
            "trajectory_id": datasets.Value("string"),
            "goal": datasets.Value("string"),
            "env": datasets.Value("string"),
            "split": datasets.Value("string"),
            "task_type": datasets.Value("string"),
            "task_id": datasets.Value("string"),
            "success": datasets.Value("bool"),
            "reward": datasets.Value("float64"),
            "num_steps": datasets.Value("int64"),
            "policy_kind": datasets.Value("string"),
            "policy_name": datasets.Value("string"),
            "seed": datasets.Value("int64"),
            "prompt_tokens": datasets.Value("int64"),
            "completion_tokens": datasets.Value("int64"),
            "cost_usd": datasets.Value("float64"),
            "evaluation": datasets.Value("bool"),
            "schema_version": datasets.Value("int64"),
            "steps": datasets.List(step_features),
            "trajectory": datasets.Value("string"),
        }
    )
    rows = []
    for traj in trajectories:
        metadata = trajectory_metadata(traj)
        metadata.pop("started_at")
        rows.append(
            {
                "trajectory_id": traj.trajectory_id,
                "goal": traj.goal,
                **metadata,
                "steps": [{key: getattr(step, key) for key in step_features} for step in traj.steps],
                "trajectory": traj.to_json(),
            }
        )
    if not rows:
        return datasets.Dataset.from_dict({name: [] for name in features}, features=features)
    return datasets.Dataset.from_list(rows, features=features)


def dataset_card(repo_id: str, stats: dict[str, Any], tables: dict[str, int], *, source: str = "") -> Any:
    """The ``huggingface_hub.DatasetCard`` of a published store: what each table holds, and the store's counts.

    ``stats`` is :meth:`~agentkd.store.ExperienceStore.stats` of what is published; ``tables`` maps
    each table (a dataset config) to its number of rows.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    described = {
        "trajectories": "one row per episode: task, outcome, policy, cost, its steps, and the full record as JSON "
                        "(`agentkd.schema.Trajectory.from_json(row['trajectory'])`)",
        "messages": "one conversation per successful episode (`messages`), TRL's conversational format: "
                    "`trl sft --dataset_name REPO --dataset_config messages` trains on it",
        "steps": "one row per step: the student's prompt before it and the teacher's reply (`prompt`/`completion`), "
                 "with the step's reward and validity",
    }
    data = DatasetCardData(tags=["agentkd", "agent-distillation", "trajectories", *stats.get("env", {})],
                           configs=[{"config_name": name, "data_files": [{"split": "train",
                                                                          "path": f"{name}/train-*"}]}
                                    for name in tables])
    lines = [f"# {repo_id}", "", "Agent trajectories recorded with agentkd" + (f" (store `{source}`)" if source else "")
             + f": {stats.get('trajectories', 0)} episodes, {stats.get('steps', 0)} steps, success rate "
             f"{stats.get('success_rate', 0):.1%}.", "", "## Tables", "", "| config | rows | holds |", "|---|---|---|"]
    lines += [f"| `{name}` | {rows} | {described.get(name, '')} |" for name, rows in tables.items()]
    for key in ("env", "split", "task_type", "policy"):
        counts = stats.get(key) or {}
        if counts:
            lines += ["", f"## By {key.replace('_', ' ')}", "", f"| {key} | episodes |", "|---|---|",
                      *(f"| {name} | {n} |" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))]
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")


def save_dataset(tables: dict[str, datasets.Dataset], card: Any, directory: str | Path) -> Path:
    """Write the tables as the Hub lays them out (``<config>/train-00000-of-00001.parquet``) with ``README.md``."""
    directory = Path(directory)
    for name, table in tables.items():
        (directory / name).mkdir(parents=True, exist_ok=True)
        table.to_parquet(str(directory / name / "train-00000-of-00001.parquet"))
    card.save(directory / "README.md")
    return directory


def push_dataset(tables: dict[str, datasets.Dataset], card: Any, repo_id: str, *, private: bool = False,
                 token: str | None = None) -> str:  # pragma: no cover - needs the network
    """Upload the tables (one config each) and the card to the Hub dataset ``repo_id``; returns its URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    for name, table in tables.items():
        table.push_to_hub(repo_id, config_name=name, split="train", private=private, token=token)
    card.push_to_hub(repo_id, repo_type="dataset", token=token)
    return f"https://huggingface.co/datasets/{repo_id}"


class FileTransfer:
    """The JSONL and dataset methods of :class:`~agentkd.store.ExperienceStore` (over its ``iterate``
    and ``upsert``)."""

    iterate: Callable[..., Iterator[Trajectory]]
    upsert: Callable[[Iterable[Trajectory]], int]

    def export_jsonl(self, path: str | Path, **filters: Any) -> int:
        """Write the (filtered) trajectories to ``path``, one JSON per line; returns the count."""
        return export_jsonl(path, self.iterate(**filters))

    def import_jsonl(self, path: str | Path) -> int:
        """Upsert every trajectory of a JSONL file; returns the count.

        The whole file is validated first, so a bad line (:class:`BadRecordError` naming
        ``file:line``) imports nothing. Blank lines are skipped.
        """
        return import_jsonl(path, self.upsert)

    def to_dataset(self, **filters: Any) -> datasets.Dataset:
        """The (filtered) trajectories as a Hugging Face ``datasets.Dataset``, one row per trajectory.

        Columns: ``trajectory_id``, ``goal`` and the flat metadata (``env``, ``split``,
        ``task_type``, ``task_id``, ``success``, ``reward``, ``num_steps``, ``policy_kind``,
        ``policy_name``, ``seed``, ``prompt_tokens``, ``completion_tokens``, ``cost_usd``,
        ``evaluation``, ``schema_version``); ``steps``, a list of
        ``{index, observation, thought, action, next_observation, reward, done, valid, deferred}``
        (the fields training needs, with a fixed Arrow type); and ``trajectory``, the full JSON,
        so ``Trajectory.from_json(row["trajectory"])`` recovers everything (candidates, info...).
        """
        return to_dataset(self.iterate(**filters))
