#!/usr/bin/env bash
# Stop the dockerd that start-dockerd.sh started, by its recorded PID after checking the process
# name (a stale PID file may name an unrelated process by now). A daemon we did not start is
# never touched. Idempotent. dockerd stops the containerd it started itself.
DIR=${REPRISE_DOCKERD_DIR:-/tmp/reprise-infra/dockerd}
FILE="$DIR/dockerd.pid"

alive() { # a PID that exists and is not a zombie (PID 1 here reaps orphans only lazily)
  kill -0 "$1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

[ -s "$FILE" ] || exit 0
pid=$(cat "$FILE")
if [[ "$pid" =~ ^[0-9]+$ ]] && [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = dockerd ] && alive "$pid"; then
  kill "$pid" && echo "stopping dockerd ($pid)"
  # dockerd stops running containers (up to 10 s each, in parallel) before it exits
  for _ in $(seq 1 120); do
    alive "$pid" || break
    sleep 0.25
  done
  if alive "$pid"; then
    kill -KILL "$pid" 2>/dev/null && echo "killed dockerd ($pid)"
  fi
fi
rm -f "$FILE"
true
