#!/usr/bin/env bash
# One row of the quality table per run, each into its own folder with the command that made it:
#   benchmarks/results/run_quality.sh STUDENT STORE NAME SPLIT MAX_TASKS CONFIG [CONFIG ...]
# e.g. benchmarks/results/run_quality.sh runs/sft135 runs/store sft135 valid_unseen 48 greedy sc@8+constrained
# MAX_TASKS "pt8" takes the first 8 tasks of each task type (--per-type 8) instead of the first N;
# "all" takes the whole split. ENV=qa or ENV=math evaluates a tool environment at its own step limit
# (household: ALFWorld's 50 steps); WORKERS (default 16) episodes run at once.
set -euo pipefail
cd "$(dirname "$0")/../.."
student=$1 store=$2 name=$3 split=$4 max_tasks=$5
shift 5
for config in "$@"; do
  out="benchmarks/results/$name/$split-${max_tasks}/$config"
  mkdir -p "$out"
  if [[ $max_tasks == pt* ]]; then subset=(--per-type "${max_tasks#pt}")
  elif [[ $max_tasks == all ]]; then subset=()
  else subset=(--max-tasks "$max_tasks"); fi
  env=${ENV:-household}
  if [[ $env == household ]]; then limit=(--max-steps 50); else limit=(--env "$env"); fi
  cmd=(.venv/bin/agentkd eval --student "$student" --store "$store" --split "$split" --configs "$config"
       "${limit[@]}" "${subset[@]}" --workers "${WORKERS:-16}" --out "$out")
  echo "${cmd[*]}" > "$out/COMMAND"
  start=$(date +%s)
  "${cmd[@]}" > "$out/log.txt" 2>&1 || echo "exit $?" >> "$out/COMMAND"
  echo "wall_seconds $(( $(date +%s) - start ))" >> "$out/COMMAND"
done
