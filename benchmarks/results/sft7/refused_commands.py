"""How an evaluation's failed episodes went wrong: refused commands, from the store.

usage: .venv/bin/python benchmarks/results/sft7/refused_commands.py STORE CONFIGURATION [SPLIT]
Per failed episode: steps, refused (invalid) steps, the first refused command (what the student wrote),
and whether its last 10 commands are one and the same; then the totals.
"""

import collections
import sys

from agentkd.policies.prompt import written_action
from agentkd.store import ExperienceStore

store, config = ExperienceStore(sys.argv[1], create=False), sys.argv[2]
split = sys.argv[3] if len(sys.argv) > 3 else None  # a store may hold one configuration's runs on several splits
episodes = [t for t in store.iterate(split=split) if t.metadata.get("evaluation") == config]  # None: every split
failed = sorted((t for t in episodes if not t.success), key=lambda t: t.task_id)
print(f"{config}: {len(episodes)} episodes, {len(failed)} failed")
refusing, repeating, verbs = 0, 0, collections.Counter()
for t in failed:
    written = [written_action(s) for s in t.steps]
    refused = [s.index for s in t.steps if not s.valid]
    same_tail = len(set(written[-10:])) == 1
    refusing += bool(refused)
    repeating += bool(refused) and same_tail
    if refused:
        verbs[written[refused[0]].split(" ")[0]] += 1
    first = f"first refused at step {refused[0]}: {written[refused[0]]!r}" if refused else "no refused command"
    print(f"  {t.task_id} {t.task_type}: {t.num_steps} steps, {len(refused)} refused; {first}"
          f"{'; the last 10 commands the same' if same_tail else ''}")
print(f"failed episodes with refused commands: {refusing} of {len(failed)}; repeating one to the end: {repeating};"
      f" first refused command's verb: {dict(verbs)}")
