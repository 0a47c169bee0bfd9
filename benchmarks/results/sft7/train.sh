#!/usr/bin/env bash
# sft7: sft6's data and recipe, trained on 2 AVX2 cores (float32) for the issue's full 60 minutes.
set -x
cd /work/main
S=/work/runs/store
time .venv/bin/agentkd collect --split train --teacher expert --episodes 3553 --store $S
time .venv/bin/agentkd collect --split train --teacher expert --episodes 500 --mistake-rate 0.1 --store $S
time .venv/bin/agentkd train sft --store $S --student smollm2-135m --out /work/runs/sft7 --epochs 1 --batch-size 1 \
    --lr 1e-4 --max-minutes 60 --batching grouped
