#!/usr/bin/env bash
# Debian's dockerd for the tests, started in the background when no daemon answers yet.
#
# Usage: bash tests/infra/start-dockerd.sh     (as root; installs docker.io with apt-get if missing)
# A daemon that already answers `docker info` is left alone (and not recorded, so stop-dockerd.sh
# will not stop it). Ours runs with the default socket /var/run/docker.sock; its PID goes to
# $REPRISE_DOCKERD_DIR/dockerd.pid (default /tmp/reprise-infra/dockerd) and its log beside it.
# Stop with tests/infra/stop-dockerd.sh. Never add --bridge=none: it deletes the shared docker0.
set -euo pipefail
DIR=${REPRISE_DOCKERD_DIR:-/tmp/reprise-infra/dockerd}
export DEBIAN_FRONTEND=noninteractive

if docker info >/dev/null 2>&1; then
  echo "dockerd already answers on ${DOCKER_HOST:-unix:///var/run/docker.sock}; not starting another"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "start-dockerd.sh: no Docker daemon answers and only root can start one (sudo bash $0)" >&2
  exit 2
fi
if ! command -v dockerd >/dev/null; then
  command -v apt-get >/dev/null || { echo "start-dockerd.sh: dockerd missing and no apt-get" >&2; exit 2; }
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
if [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != unix:///var/run/docker.sock ]; then
  echo "start-dockerd.sh: DOCKER_HOST=$DOCKER_HOST is set; this script starts the default daemon only" >&2
  exit 2
fi

install -d -m 0755 "$DIR"
# A stale PID file of ours whose daemon died: its socket and pid file would stop a new daemon.
bash "$(dirname "$0")/stop-dockerd.sh" >/dev/null
rm -f /var/run/docker.pid
# setsid: the daemon must outlive this shell and must not get the caller's Ctrl-C.
setsid /usr/sbin/dockerd --host=unix:///var/run/docker.sock >"$DIR/dockerd.log" 2>&1 </dev/null &
echo $! >"$DIR/dockerd.pid"
for _ in $(seq 1 120); do
  docker info >/dev/null 2>&1 && break
  if ! kill -0 "$(cat "$DIR/dockerd.pid")" 2>/dev/null; then
    echo "start-dockerd.sh: dockerd exited at start; last lines of $DIR/dockerd.log:" >&2
    tail -n 20 "$DIR/dockerd.log" >&2
    rm -f "$DIR/dockerd.pid"
    exit 1
  fi
  sleep 0.5
done
if ! docker info >/dev/null 2>&1; then
  echo "start-dockerd.sh: dockerd did not answer within 60 s; see $DIR/dockerd.log" >&2
  exit 1
fi
echo "dockerd up (pid $(cat "$DIR/dockerd.pid"), server $(docker version -f '{{.Server.Version}}'), log $DIR/dockerd.log)"
