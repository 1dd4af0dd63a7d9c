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
