#!/usr/bin/env bash
# Set up dlbox in ./.venv: torch first (alone, so pip takes the CPU build where one lies on
# disk instead of pulling CUDA packages), then dlbox with its dev extras.
# Usage: scripts/setup.sh            (python only)
#        scripts/setup.sh --system   (also Docker engine, base image, Chromium; needs root)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${DLBOX_TORCH_SPEC:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "==> installing $TORCH_SPEC (alone, first)"
    .venv/bin/pip install -q --disable-pip-version-check "$TORCH_SPEC" \
        || .venv/bin/pip install -q --disable-pip-version-check \
            --index-url https://download.pytorch.org/whl/cpu "torch>=2.10"
fi
echo "==> installing dlbox with its dev extras"
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'

if [ "${1:-}" = "--system" ]; then
    scripts/provision-system.sh
fi
