#!/usr/bin/env bash
# A one-node Slurm 22.05 cluster in a temporary folder, for trying the Slurm scripts on one
# machine and for the Slurm tests of scripts/test.sh (docs/distributed.md, "A local cluster").
#
#   eval "$(scripts/slurm/local-cluster.sh start [DIR])"   # prints `export SLURM_CONF=...`
#   sinfo; sbatch --wait ...; squeue
#   scripts/slurm/local-cluster.sh stop [DIR]
#   scripts/slurm/local-cluster.sh status [DIR]
#
# DIR (default: a new `mktemp -d`, remembered in /tmp/mm1-local-slurm.dir for a later `stop`)
# holds everything: slurm.conf, its own munge key (`mungekey -c`) and munged socket, the state
# and spool folders, pid files and logs. Nothing system-wide is read or changed: no /etc/slurm,
# no /etc/munge key, no /run/munge socket, no default ports (two free ports are chosen). The
# node has CPUs=2 with proctrack/linuxproc, task/none and select/cons_tres, so it needs neither
# cgroups nor systemd. Run as root (slurmd starts jobs as their users; apt-get installs the
# Debian packages slurmctld slurmd slurm-client munge when they are missing).
#
# `stop` cancels every job, stops slurmd, slurmctld and munged (by their pid files) and then
# ends whatever slurmstepd or job process of this cluster is left (one that escaped Slurm's
# process tracking), so that no daemon or job of the cluster keeps running. It is safe to call
# twice, and after a failed start.
set -euo pipefail

pointer="${TMPDIR:-/tmp}/mm1-local-slurm.dir"
packages=(slurmctld slurmd slurm-client munge)

die() { echo "local-cluster: $*" >&2; exit 1; }
say() { echo "local-cluster: $*" >&2; }

usage() {
  echo "usage: $0 start [DIR] | stop [DIR] | status [DIR]" >&2
  exit 2
}

install_packages() {
  local missing=()
  for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing Debian packages ${missing[*]} (run as root to install them)"
  say "installing ${missing[*]}"
  # The packages' maintainer scripts would start the system-wide munged/slurmd; Debian's
  # policy-rc.d hook (exit 101) forbids that. Add it for the install when the image lacks it.
  local policy=/usr/sbin/policy-rc.d added=false
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added=true
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  local rc=$?
  $added && rm -f "$policy"
  return $rc
}

# A TCP port nothing listens on (from the range Linux does not hand out as ephemeral ports).
free_port() {
  local p used
  used=$(ss -Hltn 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 12000))
    grep -qx "$p" <<<"$used" || { echo "$p"; return; }
  done
  die "no free TCP port found in 20000-32000"
}

# The cluster folder: the argument, else the one `start` remembered.
resolve_dir() {
  local d="${1:-}"
  if [ -z "$d" ] && [ -f "$pointer" ]; then d=$(cat "$pointer"); fi
  [ -n "$d" ] || die "no cluster folder given and none remembered in $pointer"
  echo "$d"
}

write_config() {
  local dir="$1" node="$2" user
  user=$(id -un)
  mkdir -p "$dir"/{etc,state,spool,log,run,munge}
  chmod 700 "$dir/munge"
  : >"$dir/etc/plugstack.conf" # an empty SPANK stack, not /etc/slurm/plugstack.conf
  cat >"$dir/etc/slurm.conf" <<EOF
# Written by scripts/slurm/local-cluster.sh: a one-node test cluster in $dir.
ClusterName=mm1local
SlurmctldHost=$node(127.0.0.1)
SlurmUser=$user
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=15
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
PlugStackConfig=$dir/etc/plugstack.conf
# No cgroups, no CPU binding: runs in a container without systemd.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=none
SwitchType=switch/none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
# Look for startable jobs every 2 s (default 60 s), so a requeued job restarts soon after cred_expire.
SchedulerParameters=sched_interval=2
# Finished jobs stay visible to scontrol for 5 minutes; a killed step's tasks get 5 s.
MinJobAge=300
KillWait=5
NodeName=$node NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

# Wait until `pidfile` names a live process (a daemon that forked), or fail with its log.
wait_pidfile() {
  local pidfile="$1" log="$2" name="$3"
  for _ in $(seq 100); do
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  say "$name did not start; last lines of $log:"
  tail -n 20 "$log" >&2 2>/dev/null || true
  return 1
}

start() {
  local dir="${1:-}"
  install_packages
  if [ -z "$dir" ]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/mm1-slurm.XXXXXX")
    echo "$dir" >"$pointer"
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ -e "$dir/etc/slurm.conf" ] && die "$dir already holds a cluster (stop it first)"
  local node conf
  node=$(hostname -s)
  write_config "$dir" "$node"
  conf="$dir/etc/slurm.conf"
  # The daemons (and so every slurmstepd) carry MM1_LOCAL_SLURM, and jobs carry the submitter's
  # SLURM_CONF: `stop` finds whatever is left of the cluster by them.
  export SLURM_CONF="$conf" MM1_LOCAL_SLURM="$dir"

  # On any failure below (set -e, die), leave nothing behind.
  trap 'if [ $? -ne 0 ]; then say "start failed; stopping what was started"; stop "$dir" >&2 || true; fi' EXIT

  mungekey --create --keyfile="$dir/munge/munge.key"
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed"
  wait_pidfile "$dir/munge/munged.pid" "$dir/munge/munged.log" munged
  munge --socket="$dir/munge/munge.socket" -n | unmunge --socket="$dir/munge/munge.socket" >/dev/null ||
    die "munged at $dir/munge/munge.socket does not answer"

  slurmctld -f "$conf"
  wait_pidfile "$dir/run/slurmctld.pid" "$dir/log/slurmctld.log" slurmctld
  slurmd -f "$conf" -N "$node"
  wait_pidfile "$dir/run/slurmd.pid" "$dir/log/slurmd.log" slurmd

  local state=""
  for _ in $(seq 120); do
    state=$(sinfo -h -N -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.5
  done
  if [ "$state" != idle ]; then
    say "node $node is '${state:-not reported}' after 60 s, not idle; logs:"
    tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
    false
  fi
  trap - EXIT
  say "one-node cluster up in $dir (node $node, 2 CPUs); stop with: $0 stop $dir"
  echo "export SLURM_CONF=$conf"
}

# True when pid $1 is this script or one of its subshells or children: they carry the caller's
# SLURM_CONF too (a forked subshell shows its parent's environment).
ours() {
  local pid="$1" stat fields
  while [ -n "$pid" ] && [ "$pid" -gt 1 ]; do
    [ "$pid" = $$ ] && return 0
    stat=$({ cat "/proc/$pid/stat"; } 2>/dev/null) || return 1
    # "pid (comm) state ppid ...": comm may hold spaces, so read after its closing parenthesis
    read -r -a fields <<<"${stat##*) }"
    pid=${fields[1]}
  done
  return 1
}

# Pids of this cluster's daemons and slurmstepd (MM1_LOCAL_SLURM=DIR, set for the daemons only)
# and of its jobs' processes (SLURM_CONF=DIR/etc/slurm.conf with a SLURM_JOB_ID), other than this
# script's own. A shell that ran `eval "$(... start)"` and what it started outside jobs are spared.
cluster_pids() {
  local dir="$1" f pid env
  for f in /proc/[0-9]*/environ; do
    pid=${f#/proc/}; pid=${pid%/environ}
    # (kernel threads and processes of other users may not be readable: skipped)
    env=$({ tr '\0' '\n' <"$f"; } 2>/dev/null) || continue
    if grep -qxF "MM1_LOCAL_SLURM=$dir" <<<"$env" ||
      { grep -qxF "SLURM_CONF=$dir/etc/slurm.conf" <<<"$env" && grep -q '^SLURM_JOB_ID=' <<<"$env"; }; then
      ours "$pid" || echo "$pid"
    fi
  done
}

stop_pidfile() {
  local pidfile="$1" pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

stop() {
  local dir conf left
  dir=$(resolve_dir "${1:-}")
  conf="$dir/etc/slurm.conf"
  [ -d "$dir" ] || { say "no cluster folder $dir"; rm -f "$pointer"; return 0; }
  dir=$(cd "$dir" && pwd)
  if [ -f "$conf" ] && [ -s "$dir/run/slurmctld.pid" ]; then
    # Cancel every job and give the steps KillWait (5 s) to end before the daemons go.
    SLURM_CONF="$conf" timeout 10 scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 40); do
      [ -z "$(SLURM_CONF="$conf" timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.25
    done
  fi
  stop_pidfile "$dir/run/slurmd.pid"
  stop_pidfile "$dir/run/slurmctld.pid"
  stop_pidfile "$dir/munge/munged.pid"
  # Whatever still carries this cluster's SLURM_CONF: slurmstepd, job tasks, stray clients.
  left=$(cluster_pids "$dir")
  if [ -n "$left" ]; then
    say "ending leftover processes of the cluster: $(echo $left)"
    kill -TERM $left 2>/dev/null || true
    sleep 1
    left=$(cluster_pids "$dir")
    [ -n "$left" ] && kill -KILL $left 2>/dev/null || true
  fi
  [ -f "$pointer" ] && [ "$(cat "$pointer")" = "$dir" ] && rm -f "$pointer"
  left=$(cluster_pids "$dir")
  [ -z "$left" ] || die "processes of the cluster in $dir survived SIGKILL: $left"
  say "stopped the cluster in $dir (logs kept there)"
}

status() {
  local dir
  dir=$(resolve_dir "${1:-}")
  SLURM_CONF="$dir/etc/slurm.conf" sinfo -N
  SLURM_CONF="$dir/etc/slurm.conf" squeue
}

case "${1:-}" in
  start) shift; [ $# -le 1 ] || usage; start "$@" ;;
  stop) shift; [ $# -le 1 ] || usage; stop "$@" ;;
  status) shift; [ $# -le 1 ] || usage; status "$@" ;;
  *) usage ;;
esac
