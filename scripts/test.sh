#!/usr/bin/env bash
# Set up everything (venv, Docker engine, base image, Chromium) and run every test.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
DLBOX_DOCKERD_PIDFILE=$(mktemp /tmp/dlbox-dockerd.XXXXXX)
export DLBOX_DOCKERD_PIDFILE
stop_dockerd() {  # the engine this run started (provision-system.sh wrote its pid), if any
    local pid
    pid=$(cat "$DLBOX_DOCKERD_PIDFILE" 2>/dev/null || true)
    rm -f "$DLBOX_DOCKERD_PIDFILE"
    # as root when it was started so (sudo): a plain kill of root's process is refused
    local as=""
    [ "$(id -u)" = 0 ] || as=sudo
    [ -n "$pid" ] && $as kill -0 "$pid" 2>/dev/null || return 0
    echo "==> stopping the dockerd this run started"
    $as kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do $as kill -0 "$pid" 2>/dev/null || return 0; sleep 1; done
}
trap stop_dockerd EXIT
scripts/setup.sh --system
export DLBOX_BASE_IMAGE=${DLBOX_BASE_IMAGE:-dlbox-base:bookworm}
echo "==> pytest"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "pytest collected no tests" >&2; fi
exit $rc
