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
