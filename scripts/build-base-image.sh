#!/usr/bin/env bash
# Build the dlbox base image (Debian bookworm + Python 3.11) without any registry:
# debootstrap a root filesystem from Debian's mirror and `docker import` it. The host's CA
# bundle goes in, so pip inside containers trusts a TLS-intercepting proxy as the host does.
# Usage: scripts/build-base-image.sh [TAG]   (default dlbox-base:bookworm; skips if present)
set -euo pipefail
case "${1:-}" in
    -h | --help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
if [ $# -gt 1 ]; then
    echo "error: one argument at most (the tag), got $#: $*" >&2
    echo "hint: scripts/build-base-image.sh [TAG]" >&2
    exit 2
fi
TAG=${1:-${DLBOX_BASE_IMAGE:-dlbox-base:bookworm}}
# An image reference docker accepts (optional registry host[:port]/, lower-case name,
# optional :tag), checked before the ~90 s of debootstrap: `docker import` would refuse it
# only at the end.
if ! [[ "$TAG" =~ ^([A-Za-z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$ ]]; then
    echo "error: $TAG is not a valid image name" >&2
    echo "hint: use lower-case letters, digits and . _ - with an optional :tag, e.g. dlbox-base:bookworm" >&2
    exit 2
fi
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Docker as the user where their docker answers (review: `sudo docker` first counted an image
# present as missing for a user without sudo); root, or passwordless sudo, for the rest.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
# need_root names the command the user ran: scripts/test.sh or setup.sh --system set it
user_command=${DLBOX_USER_COMMAND:-scripts/build-base-image.sh}
DOCKER=docker
if ! docker info >/dev/null 2>&1; then
    need_root "$user_command" "use Docker"
    DOCKER="$SUDO docker"
    $DOCKER info >/dev/null 2>&1 || {
        echo "error: no Docker engine answers (docker info failed)" >&2
        echo "hint: start dockerd (scripts/provision-system.sh does), then run this again" >&2
        exit 1; }
fi

if $DOCKER image inspect "$TAG" >/dev/null 2>&1; then
    echo "==> base image $TAG already present"
    exit 0
fi
need_root "$user_command" "debootstrap the base image"
ROOTFS=$(mktemp -d "${TMPDIR:-/tmp}/dlbox-rootfs.XXXXXX")
LOG=$(mktemp "${TMPDIR:-/tmp}/dlbox-debootstrap.XXXXXX.log")
# Each clean-up step on its own: under set -e a failing one ended the trap (log left behind)
# and became the exit status.
trap '$SUDO rm -rf "$ROOTFS" || true; rm -f "$LOG" || true' EXIT
echo "==> debootstrap bookworm into $ROOTFS (about 90 s)"
if ! $SUDO debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates,tini \
        bookworm "$ROOTFS" "$MIRROR" >"$LOG" 2>&1; then
    tail -20 "$LOG" >&2
    echo "error: debootstrap bookworm from $MIRROR failed (its log's end is above)" >&2
    echo "hint: check the network to the Debian mirror (DEBIAN_MIRROR=URL picks another one)," \
        "or HTTP(S)_PROXY" >&2
    exit 1
fi
$SUDO cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
$SUDO rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
echo "==> docker import as $TAG"
$SUDO tar -C "$ROOTFS" -c . | $DOCKER import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' - "$TAG" >/dev/null
echo "==> built $TAG"
