"""Query the experience store: load the committed sample trajectories, then search them.

    python examples/query_store.py                      # a fresh store in runs/example-query
    python examples/query_store.py --store trajectories/store --goal "put a clean mug in the coffee machine"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import agentkd

SAMPLE = Path(__file__).resolve().parents[1] / "trajectories" / "sample" / "household.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="runs/example-query")
    parser.add_argument("--goal", default="put a clean mug in the coffee machine")
    args = parser.parse_args()

    store = agentkd.ExperienceStore(args.store)
    if store.count() == 0:
        print(f"importing {store.import_jsonl(SAMPLE)} sample trajectories from {SAMPLE.name}")

    stats = store.stats()
    print(f"{stats['trajectories']} trajectories, {stats['steps']} steps")

    # Whole trajectories whose goal is like ours, then single steps (what in-context distillation shows).
    print("trajectories with a goal like:", args.goal)
    for hit in store.query_trajectories(args.goal, k=3, env="household", success=True):
        print(f"  distance {hit.distance:.2f}  {hit.trajectory.goal}  ({hit.trajectory.num_steps} steps)")
    print("steps from the most similar contexts (what in-context distillation shows a student):")
    for hit in store.query_steps(args.goal, k=3, env="household"):
        print(f"  distance {hit.distance:.2f}  {hit.action}")


if __name__ == "__main__":
    main()
