#!/usr/bin/env bash
# A one-node Slurm cluster on loopback, for the workflow's Slurm integration test (and for trying the
# Slurm profile on a laptop). Needs root and Debian's packages.
#
#   scripts/local-slurm.sh start   # install if needed, write slurm.conf, start munged/slurmctld/slurmd
#   scripts/local-slurm.sh stop    # stop exactly the daemons that `start` started (by PID)
#
# State lives in $ALPS_SLURM_DIR (default /tmp/alps-slurm): spool, logs, and one PID file per daemon started
# here. Daemons that were already running are never touched. slurm.conf must be at /etc/slurm/slurm.conf:
# the Slurm executor plugin strips SLURM_* variables (SLURM_CONF included) inside jobs, so job steps only
# find the default location. The script writes it there only when no other configuration exists (a
# marker line tells its own file apart) and removes it on stop.
set -euo pipefail

STATE=${ALPS_SLURM_DIR:-/tmp/alps-slurm}
CONF=/etc/slurm/slurm.conf
MARKER="# written by alps scripts/local-slurm.sh"
HOST=$(hostname -s)

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null; then
    return
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "local-slurm: Slurm is not installed and installing it needs root" >&2
    exit 3
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
}

write_conf() {
  if [ -e "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
    echo "local-slurm: $CONF exists and is not ours; this script only runs a throwaway local cluster" >&2
    exit 6
  fi
  mkdir -p "$STATE/spool/ctld" "$STATE/spool/d" "$STATE/log" /etc/slurm
  # RealMemory must not exceed what slurmd detects, or the node is drained as "Low RealMemory".
  local detected
  detected=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  local memory=$((detected * 95 / 100))
  local cpus
  cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p')
  cat >"$CONF" <<CONF
$MARKER
ClusterName=alps-local
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
}

start_daemon() {  # name, pid file, command...
  local name=$1 pidfile=$2
  shift 2
  "$@"
  # The daemons fork; wait for their own PID file and keep the PID as ours.
  for _ in $(seq 50); do
    [ -s "$pidfile" ] && break
    sleep 0.1
  done
  [ -s "$pidfile" ] || { echo "local-slurm: $name did not start (see $STATE/log)" >&2; exit 4; }
  cp "$pidfile" "$STATE/started.$name.pid"
}

start() {
  install_packages
  write_conf
  if ! pgrep -x munged >/dev/null; then
    mkdir -p /run/munge && chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/alps-munged.pid
    for _ in $(seq 50); do [ -s /run/munge/alps-munged.pid ] && break; sleep 0.1; done
    cp /run/munge/alps-munged.pid "$STATE/started.munged.pid"
  fi
  start_daemon slurmctld "$STATE/slurmctld.pid" slurmctld -f "$CONF"
  start_daemon slurmd "$STATE/slurmd.pid" slurmd -f "$CONF"
  for _ in $(seq 100); do
    if sinfo -h -N -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; then
      echo "local-slurm: cluster up ($CONF)"
      return
    fi
    sleep 0.2
  done
  echo "local-slurm: node never became idle:" >&2
  sinfo -N >&2 || true
  exit 5
}

stop() {
  for name in slurmd slurmctld munged; do
    local pidfile=$STATE/started.$name.pid
    [ -f "$pidfile" ] || continue
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
  if [ -e "$CONF" ] && grep -qF "$MARKER" "$CONF"; then
    rm -f "$CONF"
  fi
  echo "local-slurm: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
