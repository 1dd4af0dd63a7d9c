#!/usr/bin/env bash
# System components the integration tests use: a Docker engine (started here), a base image
# built without any registry, and headless Chromium with its driver. Needs root (or passwordless
# sudo) for what it installs or starts; a docker that works for the user is used as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
# Root, or passwordless sudo, only for a step that needs it (review: a user without sudo got
# `sudo: command not found` after `sudo docker info` failed silently, even with a docker of
# their own that worked).
SUDO=""
need_root() {  # $1: what for
    [ "$(id -u)" = 0 ] && return 0
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; return 0; fi
    echo "error: scripts/test.sh needs root (or passwordless sudo) to $1" >&2
    echo "hint: run it as root: sudo scripts/test.sh" >&2
    exit 1
}

need=()
command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
    need_root "apt-get install ${need[*]}"
    echo "==> apt-get install ${need[*]}"
    $SUDO apt-get update -q >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi

# The user's own docker (root, or the docker group), else through sudo, else started here.
if ! docker info >/dev/null 2>&1; then
    need_root "use or start Docker"
    if ! $SUDO docker info >/dev/null 2>&1; then
        echo "==> starting dockerd"
        # Its pid goes to $DLBOX_DOCKERD_PIDFILE when set: scripts/test.sh stops the engine
        # it started when the tests end (an engine that was running already is left alone).
        $SUDO sh -c 'nohup dockerd >/tmp/dockerd.log 2>&1 & [ -z "$1" ] || echo $! >"$1"' \
            sh "${DLBOX_DOCKERD_PIDFILE:-}"
        for _ in $(seq 1 60); do $SUDO docker info >/dev/null 2>&1 && break; sleep 1; done
        $SUDO docker info >/dev/null 2>&1 \
            || { echo "dockerd did not start; see /tmp/dockerd.log" >&2; exit 1; }
    fi
fi

scripts/build-base-image.sh
