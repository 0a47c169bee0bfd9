"""The committed sample in trajectories/sample/ imports with `agentkd store import` and holds what its
README promises: expert episodes per environment, noisy-expert recoveries and student evaluations."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentkd.cli import app

SAMPLE = Path(__file__).resolve().parents[1] / "trajectories" / "sample"
FILES = ("household.jsonl", "qa.jsonl", "math.jsonl", "household-student.jsonl")
BUDGET_BYTES = 5_000_000


def test_sample_files_are_there_and_small():
    sizes = {name: (SAMPLE / name).stat().st_size for name in FILES}
    assert all(sizes.values()), sizes
    assert sum(sizes.values()) < BUDGET_BYTES, sizes
    assert (SAMPLE.parent / "README.md").is_file()


def test_store_import_loads_the_sample(tmp_path, monkeypatch):
    """The command a newcomer runs, with the store's real (packaged MiniLM) embedder: about a minute."""
    from agentkd.store import ExperienceStore

    monkeypatch.chdir(tmp_path)  # no trajectories/spool of the checkout gets imported
    location = tmp_path / "store"
    result = CliRunner().invoke(app, ["store", "import", *(str(SAMPLE / f) for f in FILES), "--store", str(location)])
    assert result.exit_code == 0, result.output
    assert "holds 104 trajectories" in result.output

    store = ExperienceStore(location, create=False, spool_dir=tmp_path / "spool")
    stats = store.stats()
    assert stats["env"] == {"household": 56, "math": 24, "qa": 24}
    assert store.count(env="qa", policy_kind="expert", success=True) == 24
    assert store.count(env="math", policy_kind="expert", success=True) == 24
    assert store.count(env="household", policy_kind="expert", evaluation=False) == 24
    assert store.count(env="household", policy_kind="noisy_expert") == 8

    students = list(store.iterate(env="household", evaluation=True))
    assert len(students) == 24
    assert {t.policy.kind for t in students} == {"student", "cascade"}
    assert any(t.success for t in students) and any(not t.success for t in students)
    configs = {t.metadata["evaluation"] for t in students}
    assert {"greedy", "sc@8+constrained", "sc@8+cascade@0.5"} <= configs
    assert any(step.candidates for t in students for step in t.steps)
    assert any(step.deferred for t in students for step in t.steps)
    assert store.count_steps() == stats["steps"]
    store.close()


@pytest.mark.parametrize("name", FILES)
def test_every_line_is_a_current_trajectory(name):
    from agentkd.schema import Trajectory

    lines = [line for line in (SAMPLE / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    trajectories = [Trajectory.from_json(line) for line in lines]
    assert len({t.trajectory_id for t in trajectories}) == len(trajectories)
