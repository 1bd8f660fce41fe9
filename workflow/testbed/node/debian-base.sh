#!/usr/bin/env bash
# The node image's base without any registry: Debian bookworm from the apt mirror this machine uses
# (debootstrap, minbase), the host's extra CA certificates trusted, imported as a Docker image.
#
# Usage: bash debian-base.sh TAG [LABEL=VALUE ...]     (as root; needs debootstrap and a Docker daemon)
# The rootfs is built under $REPRISE_ROOTFS_DIR (default: a fresh folder in /tmp) and removed at exit.
set -euo pipefail
TAG=${1:?usage: debian-base.sh TAG [LABEL=VALUE ...]}
shift
SUITE=bookworm
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" -ne 0 ]; then
  echo "debian-base.sh: debootstrap needs root (or use a registry base such as python:3.11-slim)" >&2
  exit 2
fi
command -v debootstrap >/dev/null || {
  echo "debian-base.sh: debootstrap is not installed (apt-get install debootstrap)" >&2
  exit 2
}
# The mirror apt already uses here (deb822 sources first, then the one-line format), unless given.
MIRROR=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
if [ -z "$MIRROR" ]; then
  MIRROR=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
MIRROR=${MIRROR:-http://deb.debian.org/debian}

WORK=$(mktemp -d "${REPRISE_ROOTFS_DIR:-/tmp}/reprise-rootfs.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOTFS="$WORK/rootfs"
echo "debootstrap $SUITE from $MIRROR into $ROOTFS"
debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$ROOTFS" "$MIRROR"

# Security updates come from the mirror's sibling archive (debian -> debian-security).
cat >"$ROOTFS/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
SRC
# HTTPS may pass a TLS-inspecting proxy whose CA only the host trusts: the nodes must trust it too.
n_ca=0
for crt in /usr/local/share/ca-certificates/*.crt; do
  [ -e "$crt" ] || continue
  cp "$crt" "$ROOTFS/usr/local/share/ca-certificates/"
  n_ca=$((n_ca + 1))
done
chroot "$ROOTFS" update-ca-certificates >/dev/null
echo "trusted $n_ca extra CA certificate(s) of the host"
# Caches and the machine id are per container, not per image.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/tmp/*
: >"$ROOTFS/etc/machine-id"

changes=(--change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8')
changes+=(--change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt')
for label in "$@"; do
  changes+=(--change "LABEL $label")
done
tar -C "$ROOTFS" --numeric-owner -c . | docker import "${changes[@]}" - "$TAG"
