#!/usr/bin/env bash
# Build CRIU from a newer Debian suite's upstream tarball and install it as $PREFIX/criu.
# Why: Debian bookworm's criu 3.17 aborts on newer kernels ("Unexpected rt vDSO area bounds"), and
# trixie's 4.1.1 cannot dump a process holding a TCP socket on Linux >= 6.16 ("Can't get 1:16 opt":
# the kernel now refuses SO_PASSCRED on inet sockets; fixed in CRIU 4.2, criu#2718).
# Usage: build-criu.sh WORKDIR PREFIX [SUITE]   (root; SUITE defaults to sid, which has 4.2.x)
set -euo pipefail
work=${1:?usage: build-criu.sh WORKDIR PREFIX}
prefix=${2:?usage: build-criu.sh WORKDIR PREFIX}
suite=${3:-sid}
export DEBIAN_FRONTEND=noninteractive
mirror=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
if [ -z "$mirror" ]; then
  echo "build-criu: no Debian mirror found in /etc/apt/sources.list.d/debian.sources; set DEBIAN_MIRROR" >&2
  exit 2
fi
mkdir -p "$work" "$prefix"
# absolute: the script changes into $work, and apt reads a relative list path under /etc/apt
work=$(cd "$work" && pwd)
prefix=$(cd "$prefix" && pwd)
cd "$work"
echo "== build dependencies (apt)"
deps=(build-essential pkg-config libbsd-dev libcap-dev libgnutls28-dev libnet1-dev libnl-3-dev
  libnftables-dev libprotobuf-c-dev libprotobuf-dev protobuf-c-compiler protobuf-compiler uuid-dev
  python3-protobuf)
# a machine whose package lists were never fetched (a fresh CI image) needs an update first
apt-get install -y -qq --no-install-recommends "${deps[@]}" >/dev/null \
  || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${deps[@]}" >/dev/null; }
# the suite's source index is read through a private list file, so the host's apt sources stay as they were
lists="$work/apt-lists-$suite"
mkdir -p "$lists/partial"
src="$work/$suite-src.sources"
printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
  "$mirror" "$suite" >"$src"
apt_opts=(-o "Dir::Etc::sourcelist=$src" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$lists")
echo "== criu source from $suite ($mirror)"
apt-get "${apt_opts[@]}" update -qq
rm -rf criu-*/ criu_*
apt-get "${apt_opts[@]}" source --download-only --tar-only criu >/dev/null
tarball=$(ls criu_*.orig.tar.* | sort -V | tail -1)
tar xf "$tarball"
srcdir=$(ls -d criu-*/ | sort -V | tail -1)
echo "== make ($srcdir)"
make -C "$srcdir" -j"$(nproc)" criu >/dev/null
install -m 0755 "$srcdir/criu/criu" "$prefix/criu"
"$prefix/criu" --version | head -1
