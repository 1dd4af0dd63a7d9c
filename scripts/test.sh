#!/usr/bin/env bash
# Set up everything (venv, Docker engine, base image, Chromium) and run every test.
# Usage: scripts/test.sh [PYTEST-ARGUMENTS...]   (all arguments but -h/--help go to pytest,
#        e.g. scripts/test.sh -x tests/unit)
# Needs root (or passwordless sudo) to install and start what is missing.
# The docker tests build an image with torch from a folder holding a CPU torch wheel,
# DLBOX_WHEELHOUSE; unset, /opt/wheels when it holds one, else .cache/wheelhouse, where pip
# downloads the CPU build of the venv's torch version. With CI=true, none is an error.
set -euo pipefail
case "${1:-}" in
    -h | --help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
cd "$(dirname "$(readlink -f "$0")")/.."  # the checkout, also through a link
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
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
pass_stop_signals_on  # to the set-up and pytest, test.sh then ending with the signal's status
export DLBOX_USER_COMMAND=scripts/test.sh  # what the set-up's errors tell to run as root
step_passing_signals scripts/setup.sh --system
export DLBOX_BASE_IMAGE=${DLBOX_BASE_IMAGE:-dlbox-base:bookworm}

cpu_torch_in() { compgen -G "$1/torch-*+cpu-*.whl" >/dev/null; }
in_ci() { case "${CI:-}" in 1 | [Tt]rue | TRUE | [Yy]es | YES) ;; *) return 1 ;; esac; }
find_wheelhouse() {  # sets DLBOX_WHEELHOUSE, or says why there is none and returns 1
    local opt=${DLBOX_OPT_WHEELS:-/opt/wheels} mine=$PWD/.cache/wheelhouse folder version spec
    local index out=""
    for folder in "$opt" "$mine"; do
        if cpu_torch_in "$folder"; then DLBOX_WHEELHOUSE=$folder; return 0; fi
    done
    version=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("torch"))')
    spec="torch==${version%%+*}+cpu"
    echo "==> pip download $spec (a CPU torch wheel for the docker tests) into $mine"
    # pip's own config first (it finds a wheel on disk wherever it is), then PyTorch's index
    for index in "" https://download.pytorch.org/whl/cpu; do
        if out=$(.venv/bin/pip download -q --no-deps --retries 1 -d "$mine" \
                ${index:+--index-url "$index"} "$spec" 2>&1) && cpu_torch_in "$mine"; then
            DLBOX_WHEELHOUSE=$mine
            return 0
        fi
    done
    local reason
    reason=$(printf '%s\n' "$out" | grep -o 'ERROR: .*' | tail -1 | sed 's/^ERROR: //' || true)
    # no network: pip's last line is "No matching distribution found" all the same (review)
    if pip_had_no_connection - <<<"$out"; then
        reason="no connection to $index (${reason:-pip gave no reason})"
    fi
    local kind=warning
    if in_ci; then kind=error; fi
    echo "$kind: no CPU torch wheel for the docker tests: none in $opt, and pip download" \
        "$spec failed: ${reason:-it gave no wheel named +cpu}" >&2
    echo "hint: set DLBOX_WHEELHOUSE to a folder holding a CPU torch wheel (pip download" \
        "--no-deps -d DIR $spec --index-url https://download.pytorch.org/whl/cpu)" >&2
    return 1
}
# The docker tests need it. CI=true: they fail without it, after the whole set-up, so it is
# an error at once; elsewhere they skip, and the other tests run.
if [ -z "${DLBOX_WHEELHOUSE:-}" ]; then
    find_wheelhouse || ! in_ci || exit 1
    export DLBOX_WHEELHOUSE
fi
echo "==> pytest"
rc=0
step_passing_signals .venv/bin/python -m pytest "$@" || rc=$?
if [ $rc -eq 5 ]; then echo "pytest collected no tests" >&2; fi
exit $rc
