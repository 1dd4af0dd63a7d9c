#!/usr/bin/env bash
# Set up everything (venv, Docker engine, base image, Chromium) and run every test.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --system
export DLBOX_BASE_IMAGE=${DLBOX_BASE_IMAGE:-dlbox-base:bookworm}
echo "==> pytest"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "pytest collected no tests" >&2; fi
exit $rc
