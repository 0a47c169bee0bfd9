#!/usr/bin/env bash
set -x
cd /work/main
S=/work/runs/store
time .venv/bin/agentkd collect --split train --teacher expert --episodes 500 --mistake-rate 0.1 --store $S
time .venv/bin/agentkd train sft --store $S --student smollm2-135m --out /work/runs/sft6 --epochs 1 --batch-size 1 \
    --lr 1e-4 --max-minutes 50 --batching grouped
