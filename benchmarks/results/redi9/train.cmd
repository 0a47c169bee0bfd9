.venv/bin/agentkd train redi --store /work/runs/store-redi9 --student /work/runs/sft9 --out /work/runs/redi9 --lr 1e-5 --batch-size 2 --grad-accum 2 --epochs 1 --max-minutes 30
wall_seconds 1828
