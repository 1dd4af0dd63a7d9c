# Shared by the scripts in scripts/ (sourced, not run).
# shellcheck shell=bash

# pip's output (a file named, - for stdin) shows it reached no package index: it then ends in
# "No matching distribution found", as for a version that is not there (review).
pip_had_no_connection() {
    local signs='NewConnectionError|ConnectTimeoutError|ProxyError|SSLError'
    grep -qE "$signs|Temporary failure in name resolution" "$@"
}

# Root, or passwordless sudo, only for a step that needs it (review: a user without sudo got
# `sudo: command not found` after `sudo docker info` failed silently, even with a docker of
# their own that worked). SUDO is then sudo, or empty as root; else one error line, exit 1.
SUDO=""
need_root() {  # $1: the command the user ran (named in the error), $2: what for
    [ "$(id -u)" = 0 ] && return 0
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        # shellcheck disable=SC2034  # read by the scripts that source this
        SUDO=sudo; return 0
    fi
    echo "error: $1 needs root (or passwordless sudo) to $2" >&2
    echo "hint: run it as root: sudo $1" >&2
    exit 1
}

# A step run as a child that a stop signal to the script is passed on to: the script then ends
# with the signal's status (143 TERM, 129 HUP, 130 INT) once the step has, its EXIT trap run
# (review: a SIGTERM to scripts/test.sh, from a CI timeout or kill, left pytest running on its
# own). pass_stop_signals_on sets the traps; a signal between steps ends the script once the
# command under way there has (bash runs a trap after it).
passing_child=""
passing_stop=""
pass_stop_on() {  # $1: the signal, $2: the exit status it gives
    if [ -z "$passing_child" ]; then exit "$2"; fi
    passing_stop=$2
    # A Ctrl-C at the terminal whose foreground this is reached the step too: a second one
    # would land in its clean-up (pytest's removal of test containers, pip's: re-review)
    if [ "$1" = INT ] && in_terminal_foreground; then return 0; fi
    kill -s "$1" "$passing_child" 2>/dev/null || true
}
in_terminal_foreground() {  # this script's process group is its terminal's foreground one
    local stat fields
    stat=$(< "/proc/$$/stat") 2>/dev/null || return 1
    # shellcheck disable=SC2206  # split on purpose: state ppid pgrp session tty_nr tpgid ...
    fields=(${stat##*) })
    [ "${#fields[@]}" -ge 6 ] && [ "${fields[5]}" != -1 ] && [ "${fields[2]}" = "${fields[5]}" ]
}
pass_stop_signals_on() {
    passing_stop=""
    trap 'pass_stop_on TERM 143' TERM
    trap 'pass_stop_on HUP 129' HUP
    trap 'pass_stop_on INT 130' INT
}
step_passing_signals() {  # COMMAND...: its exit status; the script ends if a stop signal came
    # (in the background, stdin kept and Ctrl-C's default back: a background child has
    # /dev/null and ignores SIGINT unless told otherwise)
    ( trap - INT; exec "$@" ) <&0 &
    passing_child=$!
    local rc
    while true; do
        rc=0
        wait "$passing_child" || rc=$?
        # a trapped signal ends `wait` early (> 128): wait on for the child's own end
        if [ "$rc" -gt 128 ] && kill -0 "$passing_child" 2>/dev/null; then continue; fi
        break
    done
    passing_child=""
    if [ -n "$passing_stop" ]; then exit "$passing_stop"; fi
    return "$rc"
}
