#!/usr/bin/env bash
# Set up dlbox in ./.venv: torch first (alone, so pip takes the CPU build where one lies on
# disk instead of pulling CUDA packages), then dlbox with its dev extras.
# Usage: scripts/setup.sh            (python only)
#        scripts/setup.sh --system   (also Docker engine, base image, Chromium; needs root)
set -euo pipefail
# Checked before anything is installed: a typo (--sytem) must not pass for a full set-up.
SYSTEM=0
case "$#:${1:-}" in
    0:) ;;
    1:--system) SYSTEM=1 ;;
    1:-h | 1:--help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *)
        echo "error: unknown argument(s): $*" >&2
        echo "hint: scripts/setup.sh (Python only), or scripts/setup.sh --system" >&2
        exit 2 ;;
esac
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${DLBOX_TORCH_SPEC:-torch==2.13.0}

if [ ! -x .venv/bin/python ] || [ ! -x .venv/bin/pip ]; then
    # Debian's python3 has no venv module without python3-venv.
    if ! "$PYTHON" -c "import ensurepip, venv" 2>/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "==> apt-get install python3-venv"
            apt-get update -q >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
        else
            echo "error: $PYTHON cannot make a virtual environment (no venv/ensurepip)" >&2
            echo "hint: sudo apt-get install python3-venv (Debian, Ubuntu), then run this again" >&2
            exit 1
        fi
    fi
    echo "==> creating .venv"
    rm -rf .venv  # a half-made one (no pip) from a failed attempt
    "$PYTHON" -m venv .venv || { rm -rf .venv; exit 1; }
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "==> installing $TORCH_SPEC (alone, first)"
    .venv/bin/pip install -q --disable-pip-version-check "$TORCH_SPEC" \
        || .venv/bin/pip install -q --disable-pip-version-check \
            --index-url https://download.pytorch.org/whl/cpu "torch>=2.10"
fi
echo "==> installing dlbox with its dev extras"
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'

if [ "$SYSTEM" = 1 ]; then
    scripts/provision-system.sh
fi
