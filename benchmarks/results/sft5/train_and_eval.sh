set -x
cd /work/main
while pgrep -f "agentkd collect --split train --episodes 96" >/dev/null; do sleep 10; done
date
.venv/bin/agentkd train sft --store /work/runs/store_dagger --student /work/runs/sft2 --out /work/runs/sft5 --epochs 2 \
  --batch-size 1 --lr 5e-5 --max-minutes 15 --batching grouped
date
WORKERS=16 benchmarks/results/run_quality.sh /work/runs/sft5 /work/runs/store sft5 valid_unseen pt8 greedy+constrained+noloop
date
