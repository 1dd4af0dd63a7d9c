#!/usr/bin/env bash
# System components the integration tests use: a Docker engine (started here), a base image
# built without any registry, and headless Chromium with its driver. Needs root (or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need=()
command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
    echo "==> apt-get install ${need[*]}"
    $SUDO apt-get update -q >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi

# As root, or through sudo for a user outside the docker group.
if ! $SUDO docker info >/dev/null 2>&1; then
    echo "==> starting dockerd"
    # Its pid goes to $DLBOX_DOCKERD_PIDFILE when set: scripts/test.sh stops the engine it
    # started when the tests end (an engine that was running already is left alone).
    $SUDO sh -c 'nohup dockerd >/tmp/dockerd.log 2>&1 & [ -z "$1" ] || echo $! >"$1"' \
        sh "${DLBOX_DOCKERD_PIDFILE:-}"
    for _ in $(seq 1 60); do $SUDO docker info >/dev/null 2>&1 && break; sleep 1; done
    $SUDO docker info >/dev/null 2>&1 \
        || { echo "dockerd did not start; see /tmp/dockerd.log" >&2; exit 1; }
fi

scripts/build-base-image.sh
