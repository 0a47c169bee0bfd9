"""Two evaluation configurations of one store, task by task, on the tasks both played.

usage: .venv/bin/python benchmarks/results/sft7/compare.py STORE CONFIG_A CONFIG_B
Prints each configuration's successes on the shared tasks, the tasks only one of them solved, and for
CONFIG_B the steps that drew extra samples (+retry records `samples` in a step's info).
"""

import sys

from agentkd.store import ExperienceStore

store, a, b = ExperienceStore(sys.argv[1], create=False), sys.argv[2], sys.argv[3]
runs = {c: {t.task_id: t for t in store.iterate() if t.metadata.get("evaluation") == c} for c in (a, b)}
shared = sorted(set(runs[a]) & set(runs[b]))
for c in (a, b):
    won = [runs[c][i] for i in shared if runs[c][i].success]
    steps = sum(runs[c][i].num_steps for i in shared) / max(1, len(shared))
    invalid = sum(not s.valid for i in shared for s in runs[c][i].steps)
    total = sum(runs[c][i].num_steps for i in shared)
    print(f"{c}: {len(won)}/{len(shared)} solved, mean {steps:.1f} steps, {invalid}/{total} steps refused")
for x, y in ((a, b), (b, a)):
    only = [i for i in shared if runs[x][i].success and not runs[y][i].success]
    names = [f"{i.rsplit('/', 1)[-1]} ({runs[x][i].task_type})" for i in only]
    print(f"solved by {x} only ({len(only)}): " + ", ".join(names))
retried = [s for i in shared for s in runs[b][i].steps if s.info.get("samples")]
found = sum(s.valid for s in retried)
print(f"{b}: {len(retried)} steps drew extra samples; {found} of them found an admissible action")
