set -x
cd /work/main
date
.venv/bin/agentkd collect --split train --episodes 96 --workers 16 --store /work/runs/store_dagger \
  --dagger /work/runs/sft2 --beta 0.5 --embedder minilm
date
