"""The scripts in examples/ run as a user runs them (on the tiny student, with small sizes), so they never rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_the_household_pipeline_example(tmp_path):
    out = _run("household_pipeline.py", "--workdir", str(tmp_path), "--episodes", "8", "--train-steps", "2",
               "--tasks", "1", "--max-steps", "3")
    assert "recorded 8 episodes (0 already stored), 8 solved; the store holds 8" in out
    assert "trained tiny:tiny for 2 steps" in out
    assert "  greedy: 0/1 solved" in out and " teacher: " in out


@pytest.mark.slow
def test_the_query_store_example(tmp_path):
    out = _run("query_store.py", "--store", str(tmp_path / "store"), "--goal", "put a clean mug in the coffee machine")
    assert "importing 32 sample trajectories" in out and "32 trajectories" in out
    lines = out.splitlines()
    steps = lines[lines.index("steps from the most similar contexts (what in-context distillation shows a student):")
                  + 1:]
    assert len(steps) == 3 and all(line.strip().startswith("distance") for line in steps)
