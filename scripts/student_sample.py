"""Pick a small, mixed set of a student's evaluation trajectories from a store and write them as JSONL.

    python scripts/student_sample.py STORE trajectories/sample/household-student.jsonl

Per student and evaluation configuration (trajectory metadata ``evaluation``, e.g. "greedy", "sc@8+constrained",
"sc@8+cascade@0.5") it keeps a few successes (cascade deferrals first) and the smallest few failures, so the file holds
wins, losses, self-consistency candidates and cascade deferrals without growing past a few hundred KB.
It opens the store read-only in spirit (no spool import, nothing written); copy a store another process
is writing to before pointing this at it. The lines are the store's own export format (Trajectory JSON).
"""

from __future__ import annotations

import argparse
import tempfile
from collections import defaultdict
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="store folder holding evaluation trajectories")
    parser.add_argument("out", help="JSONL file to write")
    parser.add_argument("--successes", type=int, default=2, help="successes per configuration")
    parser.add_argument("--failures", type=int, default=2, help="failures per configuration (shortest first)")
    parser.add_argument("--env", default="household")
    args = parser.parse_args()

    from agentkd.store import ExperienceStore

    with tempfile.TemporaryDirectory() as nospool:
        store = ExperienceStore(args.store, create=False, import_spool=False, spool_dir=nospool)
        by_config: dict[tuple[str, str, bool], list] = defaultdict(list)
        for traj in store.iterate(env=args.env, evaluation=True, policy_kind=["student", "cascade"]):
            by_config[(traj.policy.name, str(traj.metadata.get("evaluation")), bool(traj.success))].append(traj)
        chosen = []
        for (student, config, success), trajs in sorted(by_config.items()):
            # successes: those with cascade deferrals first (a cascade run's point), then by task;
            # failures: the smallest files first (most fail at the step limit)
            trajs.sort(key=lambda t: (-sum(s.deferred for s in t.steps), t.task_id, t.trajectory_id))
            if not success:
                trajs.sort(key=lambda t: len(t.to_json()))
            chosen += trajs[: args.successes if success else args.failures]
            kept = min(len(trajs), args.successes if success else args.failures)
            print(f"{student} {config}: {'success' if success else 'failure'} {kept} of {len(trajs)}")
        store.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for traj in chosen:
            handle.write(traj.to_json() + "\n")
    print(f"wrote {len(chosen)} trajectories to {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
