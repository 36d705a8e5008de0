#!/usr/bin/env bash
# Starts a real single-node Slurm (munged, slurmctld, slurmd) on this machine,
# for the tests of launch/slurm and for trying the sbatch script by hand.
#
#   sudo tests/launch/start_local_slurm.sh [SCRATCH]   # default /tmp/gan-slurm
#
# Needs root and Debian/Ubuntu packages: installs slurm-wlm and munge with
# apt-get if they are missing. Writes /etc/slurm/slurm.conf (only if it is
# absent or was written by this script; any other slurm.conf is refused),
# keeps Slurm's state, logs and pid files in SCRATCH, and waits until the node
# is idle. Running it again while the daemons run changes nothing. The last
# lines it prints say how to stop the daemons.
set -euo pipefail

SCRATCH="${1:-/tmp/gan-slurm}"
CONF=/etc/slurm/slurm.conf
MARKER="# Written by gan-trainer tests/launch/start_local_slurm.sh"
MUNGE_PID=/run/munge/munged.pid

die() { echo "start_local_slurm: $*" >&2; exit 1; }

# True if pid file $1 (<daemon>.pid) holds the pid of a live <daemon>: a stale
# file may hold the pid of an unrelated process.
alive() {
  [[ -s "$1" ]] && [[ "$(cat "/proc/$(cat "$1")/comm" 2>/dev/null)" \
      == "$(basename "$1" .pid)" ]]
}

[[ "$(id -u)" == 0 ]] || die "must run as root (it installs packages and \
starts munged, slurmctld and slurmd)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! [[ -x /usr/sbin/munged ]]; then
  echo "Installing slurm-wlm and munge with apt-get"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge
fi

# munge: Slurm's authentication. A key, then the daemon as its own user.
if [[ ! -f /etc/munge/munge.key ]]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
if ! alive "$MUNGE_PID"; then
  su -s /bin/sh munge -c /usr/sbin/munged
fi

# slurm.conf: this machine as the one node, with the CPUs and memory that
# slurmd itself detects (a node configured with more than it has is drained).
mkdir -p "$SCRATCH/state" "$SCRATCH/spool" /etc/slurm
if [[ -f "$CONF" ]] && ! grep -qxF "$MARKER" "$CONF"; then
  die "$CONF exists and was not written by this script; not replacing it"
fi
host="$(hostname -s)"
node="$(slurmd -C | head -n 1)"  # NodeName=<host> CPUs=... RealMemory=...
[[ "$node" == "NodeName=$host "* ]] || die "unexpected 'slurmd -C': $node"
new_conf="$(cat <<EOF
$MARKER
# Scratch: $SCRATCH
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$SCRATCH/state
SlurmdSpoolDir=$SCRATCH/spool
SlurmctldPidFile=$SCRATCH/slurmctld.pid
SlurmdPidFile=$SCRATCH/slurmd.pid
SlurmctldLogFile=$SCRATCH/slurmctld.log
SlurmdLogFile=$SCRATCH/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
$node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
)"
if [[ ! -f "$CONF" ]] || [[ "$(cat "$CONF")" != "$new_conf" ]]; then
  if alive "$SCRATCH/slurmctld.pid" || alive "$SCRATCH/slurmd.pid"; then
    die "$CONF would change while Slurm runs from $SCRATCH; stop it first"
  fi
  printf '%s\n' "$new_conf" > "$CONF"
fi

alive "$SCRATCH/slurmctld.pid" || slurmctld
alive "$SCRATCH/slurmd.pid" || slurmd

# Wait for the node to register: "idle" (or "mixed"/"allocated" if jobs run).
for _ in $(seq 60); do
  state="$(sinfo -h -n "$host" -o %t 2>/dev/null || true)"
  [[ "$state" =~ ^(idle|mix|alloc)$ ]] && break
  sleep 1
done
[[ "$state" =~ ^(idle|mix|alloc)$ ]] || die "node $host is '${state:-unknown}' \
after 60 s, not idle; see $SCRATCH/slurmctld.log and $SCRATCH/slurmd.log"

echo "Slurm is up: node $host is $state (state and logs in $SCRATCH)."
echo "Stop it with:"
echo "  kill \$(cat $SCRATCH/slurmd.pid) \$(cat $SCRATCH/slurmctld.pid) \$(cat $MUNGE_PID)"
