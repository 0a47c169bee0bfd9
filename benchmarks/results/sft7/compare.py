"""Two evaluation configurations, task by task, on the tasks both played.

usage: .venv/bin/python benchmarks/results/sft7/compare.py STORE CONFIG_A CONFIG_B [STORE_B]
CONFIG_B is read from STORE_B when given (two students' evaluation stores), else from STORE. Prints each
configuration's successes on the shared tasks, the tasks only one of them solved, the refused steps by
their verb, and for CONFIG_B the steps that drew extra samples (+retry records `samples` in a step's info).
"""

import sys
from collections import Counter

from agentkd.policies.prompt import written_action
from agentkd.store import ExperienceStore

a, b = sys.argv[2], sys.argv[3]
store_a = ExperienceStore(sys.argv[1], create=False)
store_b = ExperienceStore(sys.argv[4], create=False) if len(sys.argv) > 4 else store_a
names = (a, b) if len(sys.argv) <= 4 or a != b else (f"{a} ({sys.argv[1]})", f"{b} ({sys.argv[4]})")
runs = [{t.task_id: t for t in store.iterate() if t.metadata.get("evaluation") == c}
        for store, c in ((store_a, a), (store_b, b))]
shared = sorted(set(runs[0]) & set(runs[1]))
for name, run in zip(names, runs, strict=True):
    won = [run[i] for i in shared if run[i].success]
    steps = sum(run[i].num_steps for i in shared) / max(1, len(shared))
    refused = [(written_action(s) or "(none)").split(" ")[0] for i in shared for s in run[i].steps if not s.valid]
    total = sum(run[i].num_steps for i in shared)
    print(f"{name}: {len(won)}/{len(shared)} solved, mean {steps:.1f} steps, {len(refused)}/{total} steps refused "
          f"(by verb: {dict(Counter(refused).most_common())})")
for (x, rx), ry in (((names[0], runs[0]), runs[1]), ((names[1], runs[1]), runs[0])):
    only = [i for i in shared if rx[i].success and not ry[i].success]
    print(f"solved by {x} only ({len(only)}): "
          + ", ".join(f"{i.rsplit('/', 1)[-1]} ({rx[i].task_type})" for i in only))
retried = [s for i in shared for s in runs[1][i].steps if s.info.get("samples")]
found = sum(s.valid for s in retried)
print(f"{names[1]}: {len(retried)} steps drew extra samples; {found} of them found an admissible action")
