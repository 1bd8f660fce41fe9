#!/usr/bin/env bash
# Stop the daemons started by start-slurm.sh, by PID file, after checking each PID's process name
# (a stale PID file may name an unrelated process by now). Idempotent.
DIR=${REPRISE_SLURM_DIR:-/tmp/reprise-infra/slurm}

alive() { # a PID that exists and is not a zombie (PID 1 here reaps orphans only lazily)
  kill -0 "$1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

stop() { # stop PIDFILE EXPECTED_COMM
  local file=$1 want=$2 pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if [[ "$pid" =~ ^[0-9]+$ ]] && [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = "$want" ] && alive "$pid"; then
    kill "$pid" && echo "stopped $want ($pid)"
    for _ in $(seq 1 40); do
      alive "$pid" || break
      sleep 0.25
    done
    if alive "$pid"; then
      kill -KILL "$pid" 2>/dev/null && echo "killed $want ($pid)"
    fi
  fi
  rm -f "$file"
}

stop "$DIR/run/slurmd.pid" slurmd
stop "$DIR/run/slurmctld.pid" slurmctld
stop "$DIR/munge/munged.pid" munged
# the link start-slurm.sh made (only if it still points to our configuration)
if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$DIR/etc/slurm.conf" ]; then
  rm -f /etc/slurm/slurm.conf
fi
true
