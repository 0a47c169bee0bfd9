"""`agentkd collect --teacher DIR`, before and after it played on the replay engine, side by side.

Before: HFPolicy, one left-padded `generate` per step that re-reads every episode's whole conversation.
After: StudentPolicy on the ReplayEngine (a prefix cache per episode), as eval plays students.
Same student, tasks, step limit and concurrency; greedy; each into a fresh store (static embedder).
    .venv/bin/python benchmarks/results/collect-engine/measure.py STUDENT EPISODES MAX_STEPS WORKERS
"""

import sys
import tempfile
import time

from agentkd.collection import collect
from agentkd.policies.hf import HFPolicy
from agentkd.replay.policy import StudentPolicy
from agentkd.store import ExperienceStore

student, episodes, max_steps, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = []
for label, make in (("HFPolicy (generate)", lambda: HFPolicy(student, max_new_tokens=128)),
                    ("StudentPolicy (replay engine)", lambda: StudentPolicy(student, max_new_tokens=128))):
    policy = make()
    with tempfile.TemporaryDirectory() as tmp:
        store = ExperienceStore(f"{tmp}/store", embedding_function="static")
        start = time.perf_counter()
        summary = collect(policy, "household", "train", episodes, store, max_steps=max_steps, workers=workers)
        wall = time.perf_counter() - start
    rows.append((label, summary.played, summary.steps, summary.succeeded, wall))
    print(f"{label}: {summary.played} episodes, {summary.steps} steps, {summary.succeeded} won, {wall:.1f} s, "
          f"{summary.steps / wall:.2f} steps/s", flush=True)
    del policy
before, after = (row[2] / row[4] for row in rows)
print(f"replay engine vs generate: {after / before:.2f}x the steps/s ({after:.2f} vs {before:.2f})")
