#!/usr/bin/env bash
# Create .venv and install oodbench, the in-repo plugins and the dev tools into it.
# TORCH_SPEC pins torch for machines whose default torch wheel is a multi-GB CUDA build;
# set TORCH_SPEC="" to let pip choose (or install torch yourself first).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
TORCH_SPEC="${TORCH_SPEC-torch==2.14.1 torchvision==0.29.1}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
if [ -n "$TORCH_SPEC" ] && ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  # shellcheck disable=SC2086
  $PIP install -q $TORCH_SPEC
fi
plugins=()
for p in plugins/*/; do [ -f "$p/pyproject.toml" ] && [ "$p" != "plugins/example/" ] && plugins+=(-e "$p"); done
# [diffusion]: mini-diffusion (diffusers) is what the offline MM-OOD and SynOOD runs draw with
$PIP install -q -e ".[dev,diffusion]" "${plugins[@]}"
echo "oodbench installed in .venv ($(.venv/bin/oodbench --version 2>/dev/null || echo ok))"
