#!/usr/bin/env bash
# Create .venv and install agentkd with everything its tests need. Safe to run again (it is quick
# when everything is installed). GPU users: see README ("Installing on a GPU machine").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# PyTorch first, so that the project's `torch>=2.4` installs nothing more. The default is the CPU
# build these machines carry; GPU users set TORCH_SPEC (or install their CUDA torch into .venv first).
.venv/bin/python -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
# `official` = the ALFWorld engine (TextWorld + Fast Downward) for conformance tests and benchmarks.
.venv/bin/python -m pip install --quiet -e ".[dev,official]"
echo "agentkd installed in .venv"
