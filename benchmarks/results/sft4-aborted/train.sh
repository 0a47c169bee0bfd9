set -x
cd /work/main
date
.venv/bin/agentkd train sft --store /work/runs/store --student /work/runs/sft2 --out /work/runs/sft4 --epochs 1 \
  --batch-size 1 --lr 5e-5 --max-minutes 15 --batching grouped \
  --task-types pick_two_obj_and_place,pick_cool_then_place_in_recep,look_at_obj_in_light
date
