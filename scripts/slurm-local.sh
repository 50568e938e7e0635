#!/usr/bin/env bash
# A one-machine Slurm cluster (munge, slurmctld, slurmd) for the tests that run srun for real.
#
#   scripts/slurm-local.sh start    # prints SLURM_CONF=...; export it (the config is private, not /etc/slurm)
#   scripts/slurm-local.sh stop     # stops the daemons this script started (by their pid files)
#
# Needs root and Debian's slurm-wlm, slurmctld, slurmd and munge packages. The configuration lives in
# $ENVDOCTOR_SLURM_DIR (default /tmp/envdoctor-slurm): a machine's own /etc/slurm is never touched.
set -euo pipefail

DIR="${ENVDOCTOR_SLURM_DIR:-/tmp/envdoctor-slurm}"
CONF="$DIR/slurm.conf"
HOST="$(hostname -s)"

start_munge() {
  # A running munged (the distribution's service, or ours from an earlier start) is used as it is.
  if [ -S /run/munge/munge.socket.2 ] && munge -n </dev/null >/dev/null 2>&1; then return; fi
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  chown munge:munge /etc/munge/munge.key
  runuser -u munge -- munged --pid-file="/run/munge/munged.pid"
  touch "$DIR/munged.ours"
}

write_conf() {
  mkdir -p "$DIR/state" "$DIR/spool"
  # CPUs=4 with config_overrides: `srun -n 2` fits even on a one-core runner (the tests' tasks are light).
  cat >"$CONF" <<EOF
ClusterName=envdoctor-ci
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldPort=${ENVDOCTOR_SLURMCTLD_PORT:-6817}
SlurmdPort=${ENVDOCTOR_SLURMD_PORT:-6818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
NodeName=$HOST CPUs=4 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
}

wait_idle() {
  for _ in $(seq 60); do
    state="$(SLURM_CONF="$CONF" sinfo -h -n "$HOST" -o %T 2>/dev/null || true)"
    case "$state" in idle*|mix*|alloc*) return 0 ;; esac
    sleep 0.5
  done
  echo "slurm-local: the node did not come up (state: ${state:-none}); see $DIR/*.log" >&2
  return 1
}

start() {
  [ "$(id -u)" -eq 0 ] || { echo "slurm-local: needs root (slurmd runs jobs as their user)" >&2; exit 1; }
  for tool in slurmctld slurmd munged srun; do
    command -v "$tool" >/dev/null || PATH="$PATH:/usr/sbin" command -v "$tool" >/dev/null \
      || { echo "slurm-local: $tool not found: apt-get install slurm-wlm slurmctld slurmd munge" >&2; exit 1; }
  done
  mkdir -p "$DIR"
  start_munge
  write_conf
  # -c: a clean state, no jobs from an earlier run; -i: ignore a state saved by another configuration.
  SLURM_CONF="$CONF" /usr/sbin/slurmctld -c -i
  SLURM_CONF="$CONF" /usr/sbin/slurmd
  wait_idle
  echo "SLURM_CONF=$CONF"
}

stop_pidfile() {
  local pidfile="$1"
  [ -f "$pidfile" ] || return 0
  local pid; pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  rm -f "$pidfile"
}

stop() {
  stop_pidfile "$DIR/slurmd.pid"
  stop_pidfile "$DIR/slurmctld.pid"
  if [ -f "$DIR/munged.ours" ]; then stop_pidfile /run/munge/munged.pid; rm -f "$DIR/munged.ours"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
