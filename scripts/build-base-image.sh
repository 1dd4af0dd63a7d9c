#!/usr/bin/env bash
# Build the dlbox base image (Debian bookworm + Python 3.11) without any registry:
# debootstrap a root filesystem from Debian's mirror and `docker import` it. The host's CA
# bundle goes in, so pip inside containers trusts a TLS-intercepting proxy as the host does.
# Usage: scripts/build-base-image.sh [TAG]   (default dlbox-base:bookworm; skips if present)
set -euo pipefail
TAG=${1:-${DLBOX_BASE_IMAGE:-dlbox-base:bookworm}}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if $SUDO docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "==> base image $TAG already present"
    exit 0
fi
ROOTFS=$(mktemp -d /tmp/dlbox-rootfs.XXXXXX)
LOG=$(mktemp /tmp/dlbox-debootstrap.XXXXXX.log)
trap '$SUDO rm -rf "$ROOTFS"; rm -f "$LOG"' EXIT
echo "==> debootstrap bookworm into $ROOTFS (about 90 s)"
$SUDO debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates,tini \
    bookworm "$ROOTFS" "$MIRROR" >"$LOG" 2>&1 \
    || { tail -20 "$LOG" >&2; exit 1; }
$SUDO cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
$SUDO rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
echo "==> docker import as $TAG"
$SUDO tar -C "$ROOTFS" -c . | $SUDO docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' - "$TAG" >/dev/null
echo "==> built $TAG"
