#!/usr/bin/env bash
# Set up dlbox in ./.venv: torch first (alone, so pip takes the CPU build where one lies on
# disk instead of pulling CUDA packages), then dlbox with its dev extras.
# Usage: scripts/setup.sh            (python only)
#        scripts/setup.sh --system   (also Docker engine, base image, Chromium; needs root)
# DLBOX_TORCH_SPEC: the torch to install (default torch==2.13.0). DLBOX_TORCH_INDEX: the
# index torch alone comes from, e.g. https://download.pytorch.org/whl/cpu for the CPU build
# on a machine without a GPU (PyPI's Linux torch is the CUDA build, gigabytes more).
# Either set and not what .venv's torch came from: torch is installed again. PYTHON: the
# Python for a new .venv (an existing one is kept: rm -rf .venv first to rebuild it).
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
# A stop signal ends the set-up at once: the step running (pip, venv, apt-get) runs in the
# background and gets the signal too (review: a SIGTERM waited for a torch install to end, a
# SIGHUP left pip running alone, and a Ctrl-C, which pip turns into exit 1, sent the torch
# install to its fallback: a second install).
child=""
stop() {  # $1: the signal, $2: what to say, $3: the exit status
    if [ -n "$child" ]; then
        if [ "$1" = INT ]; then  # a terminal's Ctrl-C reached the step too: a second one
            local waited=0       # lands in pip's clean-up, a 40-line traceback (review)
            while [ "$waited" -lt 30 ] && kill -0 "$child" 2>/dev/null; do
                sleep 0.1; waited=$((waited + 1))
            done
        fi
        kill -s "$1" "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    echo "$2" >&2
    exit "$3"
}
trap 'stop INT interrupted 130' INT
trap 'stop TERM "stopped (SIGTERM)" 143' TERM
trap 'stop HUP "stopped (SIGHUP)" 129' HUP
run() {  # a step: in the background (with Ctrl-C's default back), waited for; its output
    (   # to $run_output if set (there, not around `run`: the traps' lines go to the terminal)
        trap - INT
        if [ -n "${run_output:-}" ]; then exec >"$run_output" 2>&1; fi
        exec "$@" 9<&-  # (not holding the lock below)
    ) &
    child=$!
    local rc=0
    wait "$child" || rc=$?
    child=""
    return "$rc"
}
torch_failed() {  # $1: pip's --log: one line for why, a hint, exit 1; $2: the version of
    # the torch .venv keeps, where a failed switch to another left it there
    local reason hint="hint: check the network, PIP_INDEX_URL and HTTP(S)_PROXY, and the free"
    hint+=" disk space, then run this again"
    reason=$(grep -o 'ERROR: .*' "$1" | tail -1 | sed 's/^ERROR: //' || true)
    if pip_had_no_connection "$1"; then
        reason="no connection to the package index (${reason:-pip gave no reason})"
        hint="hint: check the network, PIP_INDEX_URL and HTTP(S)_PROXY, then run this again"
    elif [[ "$reason" == *"No space left on device"* ]]; then
        hint="hint: free disk space (pip unpacks into \$TMPDIR, or /tmp), then run this again"
    elif [ -n "${DLBOX_TORCH_INDEX:-}" ] && [[ "$reason" == *"No matching distribution"* ]]; then
        hint="hint: DLBOX_TORCH_INDEX=$DLBOX_TORCH_INDEX has no $TORCH_SPEC: check the index"
        hint+=" URL, or set DLBOX_TORCH_SPEC to a torch it has"
    elif [ -n "${2:-}" ] && [[ "$reason" == *"No matching distribution"* \
            || "$reason" == *"ResolutionImpossible"* ]]; then
        hint="hint: check DLBOX_TORCH_SPEC=$TORCH_SPEC (pip finds no such torch), or unset it"
        hint+=" to go on with the torch there"
    fi
    echo "error: installing torch failed: ${reason:-pip gave no reason (see above)}" >&2
    if [ -n "${2:-}" ]; then echo "note: .venv keeps the torch it had ($2)" >&2; fi
    echo "$hint" >&2
    exit 1
}
# A PYTHON path is the caller's (review: PYTHON=./py311 was looked for in the checkout, after
# the cd below, and the error blamed its version).
case "${PYTHON:-}" in
    /*) ;;
    */*) PYTHON=$PWD/${PYTHON#./} ;;
esac
cd "$(dirname "$(readlink -f "$0")")/.."  # the checkout, also through a link
# shellcheck source=scripts/lib.sh
. scripts/lib.sh  # pip_had_no_connection
# One set-up at a time in a checkout (review: two at once each removed and made .venv under
# the other): a lock on this script itself, so no file is left in the checkout.
if command -v flock >/dev/null; then
    exec 9<scripts/setup.sh
    if ! flock -n 9; then
        echo "==> waiting for another scripts/setup.sh in this checkout to finish"
        until flock -n 9; do sleep 1; done  # (short sleeps: a signal acts at once)
    fi
fi
tmpfiles=()
trap 'rm -f ${tmpfiles[@]+"${tmpfiles[@]}"}' EXIT
PYTHON_NAMED=${PYTHON:+1}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${DLBOX_TORCH_SPEC:-torch==2.13.0}
# dlbox needs Python >= 3.10 (pyproject.toml's requires-python).
new_enough='import sys; sys.exit(sys.version_info < (3, 10))'

# A usable .venv: a Python new enough, and a pip that runs (a clone moved or renamed keeps
# a .venv whose scripts start with the old path: `.venv/bin/pip: cannot execute`), this
# checkout's own (review: a copied checkout's .venv/bin/pip started with the original's
# Python, which ran: dlbox went into the original's venv): .venv/bin/pip is then this
# .venv's own, which the steps below call.
not_ours=""
if [ -x .venv/bin/python ] && .venv/bin/python -c "$new_enough" 2>/dev/null; then
    prefix=$(.venv/bin/python -c 'import os, sys; p = sys.prefix
os.path.realpath(p) == os.path.realpath(".venv") or print(p)' 2>/dev/null || true)
    pip_at=$(.venv/bin/pip --version 2>/dev/null \
        | sed -n 's/^pip [^ ]* from \(.*\) (python [^)]*)$/\1/p' || true)
    if [ -n "$prefix" ]; then
        not_ours="its Python's sys.prefix is $prefix"
    elif [ -n "$pip_at" ] && [[ "$(readlink -m "$pip_at")" != "$(readlink -f .venv)"/* ]]; then
        not_ours="its pip runs from $pip_at"
    fi
    if [ -n "$not_ours" ]; then
        echo "==> .venv is not this checkout's ($not_ours): making a new one"
    fi
fi
if [ -n "$not_ours" ] || [ ! -x .venv/bin/python ] \
        || ! .venv/bin/python -c "$new_enough" 2>/dev/null \
        || ! .venv/bin/pip --version >/dev/null 2>&1; then
    if ! "$PYTHON" -c "$new_enough" 2>/dev/null && [ -z "$PYTHON_NAMED" ]; then
        # python3 too old (or none): a newer python3.X beside it (review), unless PYTHON names one
        for candidate in python3.13 python3.12 python3.11 python3.10; do
            if "$candidate" -c "$new_enough" 2>/dev/null; then
                found=$("$PYTHON" -c 'import platform; print(platform.python_version())' \
                    2>/dev/null || echo "not found")
                echo "==> python3 is $found: taking $candidate"
                PYTHON=$candidate
                break
            fi
        done
    fi
    if [ -n "$PYTHON_NAMED" ] && ! { command -v "$PYTHON" && "$PYTHON" -c 1; } >/dev/null 2>&1
    then  # (-c 1: a pyenv shim for a version it does not have is found, and fails)
        echo "error: PYTHON=$PYTHON is not found" >&2
        echo "hint: install it, or name a Python 3.10+ that is there (PYTHON=python3.11" \
            "scripts/setup.sh)" >&2
        exit 1
    fi
    if ! "$PYTHON" -c "$new_enough" 2>/dev/null; then
        found=$("$PYTHON" -c 'import platform; print(platform.python_version())' 2>/dev/null \
            || echo "not found")
        echo "error: dlbox needs Python 3.10 or newer; $PYTHON is $found" >&2
        echo "hint: install Python 3.10+ (or name one: PYTHON=python3.11 scripts/setup.sh)" >&2
        exit 1
    fi
    # Debian's python3 has no venv module without python3-venv.
    if ! "$PYTHON" -c "import ensurepip, venv" 2>/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "==> apt-get install python3-venv"
            run apt-get update -q >/dev/null
            run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
        else
            echo "error: $PYTHON cannot make a virtual environment (no venv/ensurepip)" >&2
            echo "hint: sudo apt-get install python3-venv (Debian, Ubuntu), then run this again" >&2
            exit 1
        fi
    fi
    echo "==> creating .venv"
    rm -rf .venv  # a half-made one (no pip) from a failed attempt
    # its output shown only when it failed by itself (review: a Ctrl-C printed venv's and
    # ensurepip's tracebacks; the trap above says "interrupted")
    venvlog=$(mktemp "${TMPDIR:-/tmp}/dlbox-venv.XXXXXX")
    tmpfiles+=("$venvlog")
    run_output=$venvlog run "$PYTHON" -m venv .venv || { cat "$venvlog" >&2; rm -rf .venv; exit 1; }
elif [ -n "$PYTHON_NAMED" ]; then  # review: PYTHON was ignored silently once .venv existed
    version='import sys; print(*sys.version_info[:2], sep=".")'
    have=$(.venv/bin/python -c "$version")
    want=$("$PYTHON" -c "$version" 2>/dev/null || echo "not found")
    # no rebuild hint for a Python that cannot make one (review: following it removed the
    # working .venv, and the set-up then failed)
    if ! command -v "$PYTHON" >/dev/null || [ "$want" = "not found" ]; then  # (a pyenv shim)
        echo "==> keeping .venv (Python $have): PYTHON=$PYTHON is not found (install it, or" \
            "name a Python that is there)"
    elif ! "$PYTHON" -c "$new_enough" 2>/dev/null; then
        echo "==> keeping .venv (Python $have): PYTHON=$PYTHON is $want, and dlbox needs" \
            "Python 3.10 or newer"
    elif [ "$have" != "$want" ]; then
        echo "==> keeping .venv (Python $have; PYTHON=$PYTHON is $want): to rebuild it with" \
            "that Python: rm -rf .venv && PYTHON=$PYTHON scripts/setup.sh"
    fi
fi
# What .venv's torch came from (review: DLBOX_TORCH_SPEC and DLBOX_TORCH_INDEX were ignored
# once it had one): either set and another than that, torch is installed again; neither set,
# the torch there is kept (also one from before this record).
torch_stamp=.venv/.dlbox-torch-from
torch_from="$TORCH_SPEC ${DLBOX_TORCH_INDEX:-}"
install_torch=0
replacing=""  # the version of the torch there, where another is to replace it
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    install_torch=1
elif [ -n "${DLBOX_TORCH_SPEC:-}${DLBOX_TORCH_INDEX:-}" ] \
        && [ "$(cat "$torch_stamp" 2>/dev/null)" != "$torch_from" ]; then
    install_torch=1
    replacing=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("torch"))' \
        2>/dev/null || true)
    replacing=${replacing:-unknown version}
    echo "==> .venv's torch is not from $TORCH_SPEC${DLBOX_TORCH_INDEX:+ at $DLBOX_TORCH_INDEX}:" \
        "installing that one"
    rm -f "$torch_stamp"
fi
if [ "$install_torch" = 1 ]; then
    echo "==> installing $TORCH_SPEC (alone, first)"
    # pip's --log (its output still shows) tells a missing version, the one case for the
    # fallback, from a full disk or no network (review: any failure went to the fallback, and
    # its last line blamed a missing version of torch or filelock).
    piplog=$(mktemp "${TMPDIR:-/tmp}/dlbox-pip.XXXXXX")
    tmpfiles+=("$piplog")
    torch_pip=(.venv/bin/pip install -q --disable-pip-version-check --log "$piplog"
        ${DLBOX_TORCH_INDEX:+--index-url "$DLBOX_TORCH_INDEX"})
    if [ -n "$replacing" ]; then
        # pip keeps an installed torch that meets the spec, whatever index it came from (the
        # CUDA build where the CPU one of that version is asked for): torch itself is installed
        # again, and the one there goes only once the new one is in (review: it was uninstalled
        # first, and a spec pip could not find left no torch); then what the new one needs
        run "${torch_pip[@]}" --force-reinstall --no-deps "$TORCH_SPEC" \
            || torch_failed "$piplog" "$replacing"
        : > "$piplog"
        run "${torch_pip[@]}" "$TORCH_SPEC" || torch_failed "$piplog"
    elif ! run "${torch_pip[@]}" "$TORCH_SPEC"; then
        # torch itself, as pip names it (review: DLBOX_TORCH_SPEC='torch>=2.13,<2.14' is
        # "torch<2.14,>=2.13" there), not a package torch needs
        # the index the user named is theirs: no other build in its place (re-review: a
        # cu128 index without the version installed the CPU build)
        if [ -z "${DLBOX_TORCH_INDEX:-}" ] \
                && grep -qiE 'No matching distribution found for torch([^a-z0-9_.-]|$)' "$piplog" \
                && ! pip_had_no_connection "$piplog"; then
            echo "==> no $TORCH_SPEC here: the newest CPU build from download.pytorch.org"
            : > "$piplog"
            run .venv/bin/pip install -q --disable-pip-version-check --log "$piplog" \
                --index-url https://download.pytorch.org/whl/cpu "torch>=2.10" \
                || torch_failed "$piplog"
        else
            torch_failed "$piplog"
        fi
    fi
    printf '%s\n' "$torch_from" > "$torch_stamp"
fi
# Once per pyproject.toml (review: every run re-made the editable install, ~10 s in each
# scripts/main.sh, with no dlbox in the venv meanwhile); the code itself is read from src/.
stamp=.venv/.dlbox-installed-from
wanted="$(cksum < pyproject.toml) $PWD"
# dlbox from this checkout's src/ (review: a copied checkout's venv imported the original's)
from_here='import os, sys, dlbox, pytest
sys.exit(os.path.realpath(dlbox.__file__) != os.path.realpath(sys.argv[1]))'
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ] || [ ! -x .venv/bin/dlbox ] \
        || ! .venv/bin/python -c "$from_here" "$PWD/src/dlbox/__init__.py" 2>/dev/null; then
    echo "==> installing dlbox with its dev extras"
    rm -f "$stamp"
    run .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
    printf '%s\n' "$wanted" > "$stamp"
else
    echo "==> dlbox is installed in .venv (pyproject.toml unchanged)"
fi

if [ "$SYSTEM" = 1 ]; then
    export DLBOX_USER_COMMAND=${DLBOX_USER_COMMAND:-scripts/setup.sh --system}  # for its errors
    run scripts/provision-system.sh
fi
