#!/usr/bin/env bash
# sft8: sft7's recipe (60 minutes of float32 SFT on 2 AVX2 cores, batch 1, lr 1e-4) on data where every
# episode carries the expert's deliberate mistakes and recoveries (mistake rate 0.2: half wrong admissible
# moves, half refused slips), instead of sft7's 3,553 clean episodes plus 500 at rate 0.1.
# (Run as written, except that the collection was first started with --episodes 1600, stopped after 487
# episodes, and re-run with 1000, which played the 513 missing of its first 1000 tasks.)
set -x
cd /work/main
S=/work/runs/store8
time .venv/bin/agentkd collect --split train --teacher expert --episodes 1000 --mistake-rate 0.2 --store $S
time .venv/bin/agentkd train sft --store $S --student smollm2-135m --out /work/runs/sft8/model --epochs 1 --batch-size 1 \
    --lr 1e-4 --max-minutes 60 --batching grouped
