#!/usr/bin/env bash
# Set up dlbox, get CIFAR-10, train the default model for this host, then evaluate it.
# Arguments go to `dlbox data fetch`, e.g. for an offline machine:
#   scripts/main.sh --from /path/to/cifar-10-python.tar.gz
# (add --sha256 HEX for a copy that is not the official archive, e.g. one rebuilt from JPEGs)
# A `--data DIR` (or `--data=DIR`) among them is passed to `dlbox train` as well, so training
# and its evaluation read the data dir the fetch filled (without it both use $DLBOX_DATA or
# the default data dir).
# Extra training flags: DLBOX_TRAIN_ARGS="--epochs 2 --model tutorial" scripts/main.sh
# (split on white space: no quotes, no spaces in a value; the data dir is main.sh's --data)
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")  # the checkout's scripts/, also through a link
for arg in "$@"; do  # `dlbox data fetch --help` exits 0: training would start after it
    case "$arg" in
        -h | --help)
            sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'
            echo
            echo "The arguments (dlbox data fetch's):"
            dlbox="$here/../.venv/bin/dlbox"
            if [ -x "$dlbox" ]; then "$dlbox" data fetch --help; else
                echo "(run scripts/setup.sh first to list them)"; fi
            exit 0 ;;
    esac
done
# Checked before the set-up (minutes on a fresh clone): `dlbox data fetch` would take --dat
# for --data (an abbreviation), and main.sh would not pass it on to training.
# Their values too, as far as a shell can tell (review: an empty --data or a mistyped
# --sha256 was found only after the set-up): dlbox's own checks follow in the fetch.
check_value() {  # $1: the flag, $2: its value
    local fail="" hint=""
    if [ -z "$2" ]; then  # (not a pattern on "$1:$2": a value may end in a colon)
        echo "error: scripts/main.sh $1 was given an empty value" >&2
        echo "hint: pass $1 VALUE (a variable in it may be unset)" >&2
        exit 2
    fi
    case "$2" in
        --*)  # `--data $UNSET --force` fetched into a folder named --force (review)
            echo "error: scripts/main.sh $1 needs a value, not $2" >&2
            echo "hint: pass $1 VALUE before $2 (a variable meant as the value may be unset)" >&2
            exit 2 ;;
    esac
    case "$1:$2" in
        --sha256:*)
            local hex
            hex=$(printf '%s' "$2" | tr '[:upper:]' '[:lower:]' | sed 's/^[[:space:]]*//; s/[[:space:]]*$//; s/^sha256://')
            if ! printf '%s' "$hex" | grep -Eqx '[0-9a-f]{64}'; then
                fail="is not a sha256 (64 hexadecimal characters)"
                hint="pass the 64 hexadecimal characters alone: --sha256 \"\$(sha256sum FILE | cut -d' ' -f1)\""
            fi ;;
        --from:*)
            local path=$2
            case "$path" in
                file://localhost/*) path=${path#file://localhost} ;;
                file://*) path=${path#file://} ;;  # a local file too
                *://*) path="" ;;  # a URL: the fetch tries it
                "~") path=$HOME ;;
                "~/"*) path="$HOME/${path#"~/"}" ;;
            esac
            # (a %-escape in a file:// URL is the fetch's to decode)
            if [ -n "$path" ] && [ ! -e "$path" ] && [[ "$path" != *%* ]]; then
                fail="names no file: $2 does not exist"
                hint="pass the path of cifar-10-python.tar.gz (relative to $PWD), or a URL"
            fi ;;
    esac
    if [ -n "$fail" ]; then
        echo "error: scripts/main.sh $1 $fail" >&2
        echo "hint: $hint" >&2
        exit 2
    fi
}
expect_value=""
for arg in "$@"; do
    if [ -n "$expect_value" ]; then check_value "$expect_value" "$arg"; expect_value=""; continue; fi
    case "$arg" in
        --data | --from | --sha256) expect_value=$arg ;;
        --data=* | --from=* | --sha256=*) check_value "${arg%%=*}" "${arg#*=}" ;;
        --force) ;;
        *)
            echo "error: scripts/main.sh takes dlbox data fetch's --data, --from, --sha256 and --force, not $arg" >&2
            echo "hint: training flags go in DLBOX_TRAIN_ARGS, e.g. DLBOX_TRAIN_ARGS=\"--epochs 2 --model tutorial\" scripts/main.sh" >&2
            exit 2 ;;
    esac
done
if [ -n "$expect_value" ]; then
    echo "error: $expect_value needs a value" >&2
    case "$expect_value" in
        --data) example=DIR ;;
        --sha256) example=HEX ;;
        *) example=/path/to/cifar-10-python.tar.gz ;;
    esac
    echo "hint: e.g. scripts/main.sh $expect_value $example" >&2
    exit 2
fi
# DLBOX_TRAIN_ARGS is split on white space when training starts: what that cannot pass on is
# refused now, not after the set-up and the fetch (review).
case " ${DLBOX_TRAIN_ARGS:-} " in
    *\"* | *\'*)
        echo "error: DLBOX_TRAIN_ARGS has quotes, which main.sh does not honour: it splits the value on white space" >&2
        echo "hint: use values without spaces (e.g. --run-dir my-runs/x), or run .venv/bin/dlbox train yourself" >&2
        exit 2 ;;
    # --da and --dat too: argparse's abbreviations of --data (--d is --data or --device)
    *" --da "* | *" --da="* | *" --dat "* | *" --dat="* | *" --data "* | *" --data="*)
        echo "error: DLBOX_TRAIN_ARGS has --data: scripts/main.sh fetches into its own --data and trains on it" >&2
        echo "hint: pass it to main.sh instead: scripts/main.sh --data DIR ..." >&2
        exit 2 ;;
esac
caller=$PWD
cd "$here/.."
# Relative --from / --data paths are the caller's: made absolute before they are used here.
absolute() {  # ~ too: the shell leaves it in --from=~/x (dlbox expands it; no cwd before)
    case "$1" in
        "" | /* | *://*) printf '%s' "$1" ;;
        "~") printf '%s' "$HOME" ;;
        "~/"*) printf '%s/%s' "$HOME" "${1#"~/"}" ;;
        *) printf '%s/%s' "$caller" "$1" ;;
    esac
}
if [ -n "${DLBOX_DATA:-}" ]; then  # a relative one is the caller's too, as --data is
    DLBOX_DATA=$(absolute "$DLBOX_DATA")
    export DLBOX_DATA
fi
args=()
data_args=()
previous=""
for arg in "$@"; do
    case "$previous:$arg" in
        --from:* | --data:*) arg=$(absolute "$arg") ;;
        *:--from=* | *:--data=*) arg="${arg%%=*}=$(absolute "${arg#*=}")" ;;
    esac
    case "$previous:$arg" in
        --data:*) data_args=(--data "$arg") ;;
        *:--data=*) data_args=(--data "${arg#--data=}") ;;
    esac
    args+=("$arg")
    previous=$arg
done
# The set-up and the fetch run as children: a SIGTERM or SIGHUP to main.sh (kill, timeout, a
# scheduler) is passed on to the one running, which stops cleanly, and main.sh ends with its
# status (review: they went on alone). A Ctrl-C reaches them from the terminal itself.
# shellcheck source=scripts/lib.sh
. scripts/lib.sh  # pass_stop_signals_on, step_passing_signals
pass_stop_signals_on
step_passing_signals scripts/setup.sh
# The `dlbox ...` commands the steps print (hints, "resume with: ...") name the checkout's
# .venv/bin/dlbox, which a fresh shell does not have on its PATH (review): say how to call it.
shown_dlbox=""
if [ "$(readlink -f "$(command -v dlbox 2>/dev/null || true)" 2>/dev/null || true)" \
        != "$(readlink -f .venv/bin/dlbox)" ]; then
    if [ "$caller" = "$PWD" ]; then shown_dlbox=.venv/bin/dlbox; else shown_dlbox=$PWD/.venv/bin/dlbox; fi
fi
activate="\`source .venv/bin/activate\` in $PWD puts"
rc=0
step_passing_signals .venv/bin/dlbox data fetch ${args[@]+"${args[@]}"} || rc=$?
if [ "$rc" = 1 ]; then  # its hint names `dlbox data fetch`'s flags, which main.sh takes too
    note="scripts/main.sh takes the same --from, --sha256 and --force"
    if [ -n "$shown_dlbox" ]; then
        note+="; the \`dlbox\` in the hint above is $shown_dlbox ($activate it on your PATH)"
    fi
    echo "note: $note" >&2
fi
if [ "$rc" != 0 ]; then exit "$rc"; fi
trap - TERM HUP INT
if [ -n "$shown_dlbox" ]; then
    echo "note: the \`dlbox ...\` commands training prints are $shown_dlbox here ($activate dlbox on your PATH)" >&2
fi
# exec: training is this process, so a SIGTERM to it (kill, docker stop) stops training as
# dlbox does, its state saved (a child was left training on its own).
# shellcheck disable=SC2086
exec .venv/bin/dlbox train ${data_args[@]+"${data_args[@]}"} ${DLBOX_TRAIN_ARGS:-}
