#!/usr/bin/env bash
# A one-node Slurm cluster on localhost for the tests: munged + slurmctld + slurmd, no systemd,
# no cgroups, no accounting database (status polling with squeue, MinJobAge=600).
#
# Usage: bash tests/infra/start-slurm.sh        (as root; installs slurm-wlm and munge with apt-get if missing)
# Everything lives under $REPRISE_SLURM_DIR (default /tmp/reprise-infra/slurm): its own slurm.conf, munge key
# and socket, spool, logs and PID files, so an existing /etc/slurm or /etc/munge is never touched.
# Clients find the cluster through SLURM_CONF; the last line printed is `export SLURM_CONF=...`.
# Stop with tests/infra/stop-slurm.sh.
set -euo pipefail
DIR=${REPRISE_SLURM_DIR:-/tmp/reprise-infra/slurm}
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" -ne 0 ]; then
  echo "start-slurm.sh: must run as root (the daemons switch to the munge and slurm users)" >&2
  exit 2
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || { echo "start-slurm.sh: slurm-wlm/munge missing and no apt-get" >&2; exit 2; }
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# A cluster of ours that is still up: stop it first, so the state below starts clean.
bash "$(dirname "$0")/stop-slurm.sh" >/dev/null
for port in 6817 6818; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "start-slurm.sh: port $port is in use (another Slurm on this machine?); not starting" >&2
    exit 3
  fi
done

rm -rf "$DIR"
install -d -m 0755 "$DIR" "$DIR/etc" "$DIR/run"
install -d -o munge -g munge -m 0711 "$DIR/munge"
install -d -o slurm -g slurm -m 0755 "$DIR/spool/ctld" "$DIR/spool/d" "$DIR/log"
chown slurm:slurm "$DIR/run"

mungekey --create --keyfile="$DIR/munge/munge.key" >/dev/null 2>&1
chown munge:munge "$DIR/munge/munge.key"
chmod 400 "$DIR/munge/munge.key"
SOCKET="$DIR/munge/munge.socket"
runuser -u munge -- /usr/sbin/munged --socket="$SOCKET" --key-file="$DIR/munge/munge.key" \
  --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed"
for _ in $(seq 1 40); do
  munge --socket="$SOCKET" -n 2>/dev/null | unmunge --socket="$SOCKET" >/dev/null 2>&1 && break
  sleep 0.25
done

CPUS=$(nproc)
MEM=$(($(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 - 1024)) # MiB; keep 1 GiB back
cat >"$DIR/etc/slurm.conf" <<CONF
ClusterName=reprise-test
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SchedulerType=sched/backfill
# finished jobs stay visible to squeue for 10 min: the executor plugin's squeue status mode
# needs MinJobAge >= 3 x slurm-init-seconds-before-status-checks
MinJobAge=600
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=localnode NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$DIR/etc/slurm.conf"
# srun inside a job runs with the SLURM_* variables stripped (the executor plugin's job step does
# that), so it reads the default path: link it to ours, but never replace a configuration we did not write.
ETC_CONF=/etc/slurm/slurm.conf
if [ -L "$ETC_CONF" ] && [ "$(readlink "$ETC_CONF")" = "$SLURM_CONF" ]; then
  :
elif [ -e "$ETC_CONF" ] || [ -L "$ETC_CONF" ]; then
  echo "start-slurm.sh: $ETC_CONF exists and is not ours; not starting a test cluster over it" >&2
  bash "$(dirname "$0")/stop-slurm.sh" >/dev/null
  exit 3
else
  install -d /etc/slurm
  ln -s "$SLURM_CONF" "$ETC_CONF"
fi

/usr/sbin/slurmctld -f "$SLURM_CONF" -i
/usr/sbin/slurmd -f "$SLURM_CONF" -N localnode
for _ in $(seq 1 60); do
  sinfo -h -N -o %T 2>/dev/null | grep -qx idle && break
  sleep 0.5
done
if ! sinfo -h -N -o %T 2>/dev/null | grep -qx idle; then
  echo "start-slurm.sh: the node did not become idle; see $DIR/log/" >&2
  sinfo -N >&2 || true
  exit 1
fi
echo "slurm up: $CPUS CPUs, $MEM MiB, partition debug (logs in $DIR/log)"
echo "export SLURM_CONF=$SLURM_CONF"
