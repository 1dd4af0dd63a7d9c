#!/usr/bin/env bash
# Set up dlbox, get CIFAR-10, train the default model for this host, then evaluate it.
# Arguments go to `dlbox data fetch`, e.g. for an offline machine:
#   scripts/main.sh --from /path/to/cifar-10-python.tar.gz --sha256 HEX
# Extra training flags: DLBOX_TRAIN_ARGS="--epochs 2 --model tutorial" scripts/main.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/dlbox data fetch "$@"
# shellcheck disable=SC2086
.venv/bin/dlbox train ${DLBOX_TRAIN_ARGS:-}
