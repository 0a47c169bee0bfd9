"""Per-task outcomes of an evaluation from its logs, for a run stopped before it wrote its report.

usage: python outcomes_from_logs.py TASK_TYPES.json LOG [LOG ...]
(TASK_TYPES.json maps a task id to [task type, goal]). A task finished in several logs counts once;
a task whose outcome differs between logs is printed (sampling is seeded once per engine, not per task,
so a task can come out differently when the episodes around it differ).
"""

import collections
import json
import re
import sys

types = {task: info[0] for task, info in json.load(open(sys.argv[1])).items()}
outcome: dict[str, tuple[str, int]] = {}
for path in sys.argv[2:]:
    for line in open(path, errors="replace"):
        match = re.search(r"\((solved|failed) (\S+) in (\d+) steps[;)]", line)
        if match:
            earlier = outcome.get(match[2])
            if earlier and earlier[0] != match[1]:
                print("differs between logs:", match[2], earlier[0], match[1])
            outcome[match[2]] = (match[1], int(match[3]))
by_type: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
for task, (result, _) in outcome.items():
    by_type[types[task]][0] += result == "solved"
    by_type[types[task]][1] += 1
solved = sum(s for s, _ in by_type.values())
steps = sum(n for _, n in outcome.values()) / max(len(outcome), 1)
print(f"finished {len(outcome)} distinct tasks, solved {solved}; mean steps {steps:.1f}")
for task_type, (s, n) in sorted(by_type.items()):
    print(f"  {task_type}: {s}/{n}")
print("failed:", sorted(task for task, (result, _) in outcome.items() if result == "failed"))
