#!/usr/bin/env bash
# Start a single-node Slurm cluster for tests: munge, MariaDB + slurmdbd (accounting, which
# the Snakemake Slurm executor needs for sacct), slurmctld and slurmd, with partitions
# `cpu` (default) and `gpu` and a fake GPU (a gres with no device behind it).
#
# Usage (as root, or with password-less sudo):
#   .ci/slurm_up.sh [STATE_DIR]          STATE_DIR defaults to /tmp/mixce-slurm
#   export SLURM_CONF=STATE_DIR/etc/slurm.conf   (or: source STATE_DIR/env)
#   .ci/slurm_down.sh [STATE_DIR]        stops every daemon this script started
#
# Idempotent: when the cluster of STATE_DIR is already up (every recorded daemon alive and
# the node answering), a second call prints so and exits 0. A half-started cluster is
# stopped (.ci/slurm_down.sh) and started afresh.
#
# Everything lives under STATE_DIR: configs (etc/), logs (log/), recorded PIDs (run/*.pid),
# Slurm state and spool, and the MariaDB data directory. Only /etc/slurm/slurm.conf is
# touched outside it: a symlink to etc/slurm.conf is made when no file is there, so that plain
# `sinfo` works; slurm_down.sh removes it again. An already running munged (the system's) is
# reused and left alone; otherwise munged is started and recorded like the others.
#
# Settings (environment variables):
#   MIXCE_SLURM_ACCOUNT   account created and given to the user (default: mixce)
#   MIXCE_SLURM_CLUSTER   cluster name (default: mixce)
#   MIXCE_SLURM_GPUS      fake GPUs on the node (default: 1)
#   MIXCE_SLURM_MEM_MB    node memory offered to jobs (default: 3/4 of MemTotal)
#   MIXCE_SLURM_DB_PORT   TCP port of the private MariaDB on 127.0.0.1 (default: 3307)
#   MIXCE_SLURM_TIMEOUT   seconds to wait for each daemon (default: 60)
#   MIXCE_SLURM_KEEP_ON_FAIL=1  leave the daemons running when the start fails (to debug)
set -euo pipefail

ROOT=${1:-/tmp/mixce-slurm}
ACCOUNT=${MIXCE_SLURM_ACCOUNT:-mixce}
CLUSTER=${MIXCE_SLURM_CLUSTER:-mixce}
NGPU=${MIXCE_SLURM_GPUS:-1}
DB_PORT=${MIXCE_SLURM_DB_PORT:-3307}
TIMEOUT=${MIXCE_SLURM_TIMEOUT:-60}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "slurm_up: error: $*" >&2; exit 1; }
say() { echo "slurm_up: $*"; }

if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    exec sudo -n --preserve-env=MIXCE_SLURM_ACCOUNT,MIXCE_SLURM_CLUSTER,MIXCE_SLURM_GPUS,MIXCE_SLURM_MEM_MB,MIXCE_SLURM_DB_PORT,MIXCE_SLURM_TIMEOUT,MIXCE_SLURM_KEEP_ON_FAIL \
      SUDO_USER="$(id -un)" bash "$0" "$@"
  fi
  die "must run as root (or with password-less sudo): it installs packages and starts daemons"
fi
[[ $ROOT == /* ]] || ROOT="$(pwd)/$ROOT"
[[ $ACCOUNT =~ ^[a-z0-9_]+$ ]] || die "MIXCE_SLURM_ACCOUNT=$ACCOUNT: use lower-case letters, digits, _"
[[ $NGPU =~ ^[1-9][0-9]*$ ]] || die "MIXCE_SLURM_GPUS=$NGPU: must be a positive integer"
# The user whose jobs run on the cluster: the sudo caller if any, else root.
JOB_USER=${SUDO_USER:-root}

export SLURM_CONF="$ROOT/etc/slurm.conf"
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

mkdir -p "$ROOT"
exec 9>"$ROOT/.lock"
flock -w "$TIMEOUT" 9 || die "another slurm_up/slurm_down holds $ROOT/.lock"

# On any failure, stop what this call started (MIXCE_SLURM_KEEP_ON_FAIL=1 keeps it to debug).
started=0
up_ok=0
on_exit() {
  if ((started && !up_ok)) && [[ ${MIXCE_SLURM_KEEP_ON_FAIL:-0} != 1 ]]; then
    echo "slurm_up: failed; stopping the daemons it started (logs: $ROOT/log)" >&2
    flock -u 9 || true
    "$HERE/slurm_down.sh" "$ROOT" >&2 || true
  fi
}
trap on_exit EXIT

# --------------------------------------------------------------------------- helpers

alive() {  # alive PID: the process exists and is not a zombie
  local pid=$1 state
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo Z)
  [[ $state != Z ]]
}

recorded_alive() {  # recorded_alive NAME: its recorded PID is alive (or it was reused)
  local f="$ROOT/run/$1.pid"
  [[ -f "$ROOT/run/$1.reused" ]] && return 0
  [[ -s $f ]] && alive "$(cat "$f")" && [[ $(cat "/proc/$(cat "$f")/comm" 2>/dev/null) == "$1" ]]
}

wait_for() {  # wait_for WHAT LOG CMD...: poll CMD every 0.5 s until it succeeds or TIMEOUT
  local what=$1 log=$2 i
  shift 2
  for ((i = 0; i < TIMEOUT * 2; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "slurm_up: error: timed out after ${TIMEOUT}s waiting for $what" >&2
  if [[ -n $log && -f $log ]]; then
    echo "---- last lines of $log" >&2
    tail -n 30 "$log" >&2
  fi
  exit 1
}

start() {  # start NAME LOG CMD...: run CMD in the foreground of a new session, record its PID
  # (stdout/stderr go to log/NAME.out; LOG is the daemon's own log, shown on failure)
  local name=$1 log=$2 out="$ROOT/log/$1.out" pid
  shift 2
  setsid "$@" >>"$out" 2>&1 </dev/null 9>&- &  # 9: the lock, not for the daemon
  pid=$!
  echo "$pid" >"$ROOT/run/$name.pid"
  started=1
  sleep 0.3
  if ! alive "$pid"; then
    tail -n 20 "$out" "$log" >&2 2>/dev/null || true
    die "$name exited at once (see $out and $log)"
  fi
  say "started $name (pid $pid, log $log)"
}

node_idle() { sinfo -h -N -o '%T' | grep -qx idle; }
sacct_ok() { sacct -n -X -S now-1minute >/dev/null; }
assoc_ok() { sacctmgr -n -P list assoc cluster="$CLUSTER" account="$ACCOUNT" user="$JOB_USER" format=user | grep -qx "$JOB_USER"; }

# --------------------------------------------------------------------------- already up?

if [[ -f "$ROOT/run/up" ]]; then
  all=1
  for d in "${DAEMONS[@]}"; do recorded_alive "$d" || all=0; done
  state=$( ( ((all)) && sinfo -h -N -o '%T' 2>/dev/null | sort -u | head -n 1) || true)
  if [[ $state =~ ^(idle|mixed|allocated|completing)$ ]] && sacct_ok 2>/dev/null; then
    say "already running under $ROOT (node $state); nothing to do"
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  say "cluster under $ROOT is only partly up; stopping what is left and starting afresh"
fi
leftover=0
for d in "${DAEMONS[@]}"; do [[ -s "$ROOT/run/$d.pid" ]] && leftover=1; done
if ((leftover)); then
  flock -u 9
  "$HERE/slurm_down.sh" "$ROOT"
  flock -w "$TIMEOUT" 9 || die "could not re-take $ROOT/.lock"
fi
rm -f "$ROOT/run/up"

# --------------------------------------------------------------------------- packages

need=()
for bin in slurmctld:slurm-wlm slurmd:slurm-wlm sbatch:slurm-client slurmdbd:slurmdbd \
  munged:munge mariadbd:mariadb-server mariadb-install-db:mariadb-server; do
  command -v "${bin%%:*}" >/dev/null || [[ -x /usr/sbin/${bin%%:*} ]] || need+=("${bin#*:}")
done
if ((${#need[@]})); then
  say "installing slurm-wlm slurmdbd munge mariadb-server (missing: ${need[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || die "apt-get update failed"
  apt-get install -y -q --no-install-recommends slurm-wlm slurmdbd munge mariadb-server >/dev/null ||
    die "apt-get install slurm-wlm slurmdbd munge mariadb-server failed"
fi
for u in slurm munge mysql; do id "$u" >/dev/null 2>&1 || die "system user $u is missing (package install incomplete?)"; done
PATH=/usr/sbin:/usr/bin:$PATH

# A fresh start forgets the jobs of an earlier start (a test cluster keeps no queue): stale
# jobs in the saved state would hold the node and keep it from becoming idle.
rm -rf "$ROOT/state" "$ROOT/spool"
mkdir -p "$ROOT"/{etc,log,run,state,spool,mysql,mysql-run}
chown slurm:slurm "$ROOT/state" "$ROOT/log"
chown mysql:mysql "$ROOT/mysql" "$ROOT/mysql-run"
chmod 755 "$ROOT" "$ROOT/log"

HOST=$(hostname -s)
NCPU=$(OMP_NUM_THREADS= OMP_THREAD_LIMIT= nproc)  # nproc alone honours OMP_NUM_THREADS
MEM_MB=${MIXCE_SLURM_MEM_MB:-$(awk '/^MemTotal:/ {print int($2 / 1024 * 3 / 4)}' /proc/meminfo)}

# --------------------------------------------------------------------------- munge

if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "reusing the munged that is already running"
  touch "$ROOT/run/munged.reused"
else
  rm -f "$ROOT/run/munged.reused"
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 0755 /run/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  fi
  start munged "$ROOT/log/munged.out" setpriv --reuid=munge --regid=munge --init-groups \
    /usr/sbin/munged --foreground
  wait_for munged "$ROOT/log/munged.out" bash -c 'munge -n | unmunge'
fi

# --------------------------------------------------------------------------- MariaDB

SOCK="$ROOT/mysql-run/mysqld.sock"
if [[ ! -d "$ROOT/mysql/mysql" ]]; then
  mariadb-install-db --no-defaults --user=mysql --datadir="$ROOT/mysql" --skip-test-db \
    --auth-root-authentication-method=socket >"$ROOT/log/mariadb-install.log" 2>&1 ||
    { tail -n 30 "$ROOT/log/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
fi
start mariadbd "$ROOT/log/mariadbd.out" /usr/sbin/mariadbd --no-defaults --user=mysql \
  --datadir="$ROOT/mysql" --socket="$SOCK" --pid-file="$ROOT/mysql-run/mysqld.pid" \
  --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
  --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900
wait_for "MariaDB on $SOCK" "$ROOT/log/mariadbd.out" \
  mariadb --no-defaults --socket="$SOCK" -u root -e 'select 1'
DB_PASS=$(cat "$ROOT/etc/db.pass" 2>/dev/null || head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$DB_PASS" >"$ROOT/etc/db.pass"
chmod 600 "$ROOT/etc/db.pass"
# A fresh start also forgets the accounting of an earlier start: job ids restart at 1.
mariadb --no-defaults --socket="$SOCK" -u root -e "
  DROP DATABASE IF EXISTS slurm_acct_db;
  CREATE DATABASE slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
  ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
  FLUSH PRIVILEGES;" || die "could not create the accounting database and its user"

# --------------------------------------------------------------------------- configs

cat >"$ROOT/etc/slurmdbd.conf" <<EOF
# written by .ci/slurm_up.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
LogFile=$ROOT/log/slurmdbd.log
PidFile=$ROOT/state/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$DB_PASS
EOF
chown slurm:slurm "$ROOT/etc/slurmdbd.conf"
chmod 600 "$ROOT/etc/slurmdbd.conf"

cat >"$ROOT/etc/slurm.conf" <<EOF
# written by .ci/slurm_up.sh: one node, partitions cpu (default) and gpu, fake GPUs
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$ROOT/state
SlurmdSpoolDir=$ROOT/spool
SlurmctldPidFile=$ROOT/state/slurmctld.pid
SlurmdPidFile=$ROOT/spool/slurmd.pid
SlurmctldLogFile=$ROOT/log/slurmctld.log
SlurmdLogFile=$ROOT/log/slurmd.log
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
MinJobAge=300
KillWait=30
InactiveLimit=0
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStorageEnforce=associations
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
GresTypes=gpu
NodeName=$HOST CPUs=$NCPU RealMemory=$MEM_MB Gres=gpu:$NGPU State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$HOST MaxTime=INFINITE State=UP
EOF

{
  echo "# written by .ci/slurm_up.sh: fake GPUs, for scheduling and bookkeeping only"
  echo "AutoDetect=off"
  for ((i = 0; i < NGPU; i++)); do
    # One distinct character device per GPU (Slurm binds by file); no GPU behind them.
    dev=/dev/null
    ((i == 1)) && dev=/dev/zero
    ((i == 2)) && dev=/dev/full
    ((i >= 3)) && die "MIXCE_SLURM_GPUS=$NGPU: at most 3 fake GPUs"
    echo "NodeName=$HOST Name=gpu File=$dev"
  done
} >"$ROOT/etc/gres.conf"
chmod 644 "$ROOT/etc/slurm.conf" "$ROOT/etc/gres.conf"
echo "export SLURM_CONF=$SLURM_CONF" >"$ROOT/env"

# Plain `sinfo` / `sbatch` read /etc/slurm/slurm.conf: link it when nothing is there.
if [[ ! -e /etc/slurm/slurm.conf || -L /etc/slurm/slurm.conf ]]; then
  mkdir -p /etc/slurm
  ln -sfn "$SLURM_CONF" /etc/slurm/slurm.conf
  echo /etc/slurm/slurm.conf >"$ROOT/run/etc-link"
elif [[ $(readlink -f /etc/slurm/slurm.conf) != "$SLURM_CONF" ]]; then
  say "note: /etc/slurm/slurm.conf belongs to another cluster; use SLURM_CONF=$SLURM_CONF"
fi

# --------------------------------------------------------------------------- daemons

start slurmdbd "$ROOT/log/slurmdbd.log" /usr/sbin/slurmdbd -D
wait_for slurmdbd "$ROOT/log/slurmdbd.log" sacctmgr -n list cluster

# The cluster, the account and the user's association exist before slurmctld registers.
sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description=tests Organization=mixce >/dev/null 2>&1 || true
sacctmgr -i add user "$JOB_USER" Account="$ACCOUNT" Cluster="$CLUSTER" DefaultAccount="$ACCOUNT" >/dev/null 2>&1 || true
wait_for "the association $JOB_USER/$ACCOUNT in slurmdbd" "$ROOT/log/slurmdbd.log" assoc_ok

start slurmctld "$ROOT/log/slurmctld.log" /usr/sbin/slurmctld -D -i
wait_for slurmctld "$ROOT/log/slurmctld.log" scontrol ping
start slurmd "$ROOT/log/slurmd.log" /usr/sbin/slurmd -D
wait_for "node $HOST idle in sinfo" "$ROOT/log/slurmd.log" node_idle
wait_for "sacct" "$ROOT/log/slurmdbd.log" sacct_ok

touch "$ROOT/run/up"
up_ok=1
say "cluster '$CLUSTER' is up: $NCPU CPUs, ${MEM_MB} MB, $NGPU fake GPU(s), account $ACCOUNT"
sinfo -o '%P %a %D %T %c %m %G'
echo "export SLURM_CONF=$SLURM_CONF"
