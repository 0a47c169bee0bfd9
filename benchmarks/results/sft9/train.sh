#!/usr/bin/env bash
# sft9: sft6/sft7's data and recipe, trained for the issue's full 60 minutes on 2 cores that have
# AMX and AVX512-BF16 (bf16 autocast, chosen by agentkd on such a CPU).
set -x
cd /work/main
S=/work/runs/store
time .venv/bin/agentkd collect --split train --teacher expert --episodes 3553 --store $S
time .venv/bin/agentkd collect --split train --teacher expert --episodes 500 --mistake-rate 0.1 --store $S
time .venv/bin/agentkd train sft --store $S --student smollm2-135m --out /work/runs/sft9 --epochs 1 --batch-size 1 \
    --lr 1e-4 --max-minutes 60 --batching grouped
