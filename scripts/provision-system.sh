#!/usr/bin/env bash
# System components the integration tests use: a Docker engine (started here), a base image
# built without any registry, and headless Chromium with its driver. Needs root (or passwordless
# sudo) for what it installs or starts; a docker that works for the user is used as it is.
# Usage: scripts/provision-system.sh   (no arguments; scripts/setup.sh --system runs it)
set -euo pipefail
case "$#:${1:-}" in  # (review: --help ran the whole provisioning)
    0:) ;;
    1:-h | 1:--help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *)
        echo "error: scripts/provision-system.sh takes no arguments, got: $*" >&2
        echo "hint: scripts/provision-system.sh (or scripts/setup.sh --system)" >&2
        exit 2 ;;
esac
cd "$(dirname "$(readlink -f "$0")")/.."  # the checkout, also through a link
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
# The command the user ran, for need_root's error (review: run by scripts/setup.sh --system,
# it named scripts/test.sh); scripts/test.sh and setup.sh --system set it.
export DLBOX_USER_COMMAND=${DLBOX_USER_COMMAND:-scripts/provision-system.sh}

need=()
command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
    need_root "$DLBOX_USER_COMMAND" "apt-get install ${need[*]}"
    echo "==> apt-get install ${need[*]}"
    $SUDO apt-get update -q >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi

# The user's own docker (root, or the docker group), else through sudo, else started here.
if ! docker info >/dev/null 2>&1; then
    need_root "$DLBOX_USER_COMMAND" "use or start Docker"
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
