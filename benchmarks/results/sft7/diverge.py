"""Where two configurations' episodes of the same tasks first differ, and what the second did next.

usage: .venv/bin/python benchmarks/results/sft7/diverge.py STORE CONFIG_A CONFIG_B TASK_NUMBER...
e.g. diverge.py /work/runs/eval-sft7 sc@8 sc@8+retry 0006 0043 0061 (the cool tasks only sc@8 solved)
"""

import sys

from agentkd.policies.prompt import written_action
from agentkd.store import ExperienceStore

store, a, b = ExperienceStore(sys.argv[1], create=False), sys.argv[2], sys.argv[3]
runs = {c: {t.task_id: t for t in store.iterate() if t.metadata.get("evaluation") == c} for c in (a, b)}
for number in sys.argv[4:]:
    task = f"household/valid_unseen/{number}"
    x, y = runs[a][task], runs[b][task]
    for k, (sx, sy) in enumerate(zip(x.steps, y.steps, strict=False)):
        if sx.raw_output != sy.raw_output:
            print(f"{number} step {k}: {a} {written_action(sx)!r} (valid {sx.valid}) | {b} {written_action(sy)!r} "
                  f"(valid {sy.valid}, {sy.info.get('samples', 8)} samples)")
            print(f"   {b} next: {[written_action(s) for s in y.steps[k + 1:k + 8]]}")
            break
