#!/usr/bin/env bash
# Stop the single-node Slurm cluster that .ci/slurm_up.sh started under STATE_DIR.
#
# Usage: .ci/slurm_down.sh [STATE_DIR]   (default /tmp/mixce-slurm; as root or with sudo)
#
# Cancels the cluster's jobs, then stops each daemon by its recorded PID (slurmd, slurmctld,
# slurmdbd, mariadbd, munged: the reverse of the start order) and waits for it to exit:
# SIGTERM, then SIGKILL after MIXCE_SLURM_STOP_TIMEOUT seconds (default 30). A munged that
# slurm_up.sh reused rather than started is left running. Job step daemons (slurmstepd) of
# this cluster that outlive slurmd are found by the SLURM_CONF in their environment and
# stopped by PID too. Safe to run twice, and on a half-started cluster. Exit status 1 if a
# process could not be stopped.
set -euo pipefail

ROOT=${1:-/tmp/mixce-slurm}
STOP_TIMEOUT=${MIXCE_SLURM_STOP_TIMEOUT:-30}

die() { echo "slurm_down: error: $*" >&2; exit 1; }
say() { echo "slurm_down: $*"; }

if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    exec sudo -n --preserve-env=MIXCE_SLURM_STOP_TIMEOUT bash "$0" "$@"
  fi
  die "must run as root (or with password-less sudo)"
fi
[[ $ROOT == /* ]] || ROOT="$(pwd)/$ROOT"
if [[ ! -d "$ROOT/run" ]]; then
  say "nothing recorded under $ROOT; nothing to stop"
  exit 0
fi
export SLURM_CONF="$ROOT/etc/slurm.conf"
PATH=/usr/sbin:/usr/bin:$PATH

exec 9>"$ROOT/.lock"
flock -w 60 9 || die "another slurm_up/slurm_down holds $ROOT/.lock"

alive() {  # alive PID: the process exists and is not a zombie
  local pid=$1 state
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo Z)
  [[ $state != Z ]]
}

failed=0
stop_pid() {  # stop_pid NAME PID: TERM, wait, KILL, wait
  local name=$1 pid=$2 i comm
  if ! alive "$pid"; then
    say "$name (pid $pid) is not running"
    return 0
  fi
  # A recorded PID outlives its daemon (a reboot, a killed container): never signal a
  # process that is not the daemon the PID was recorded for.
  comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
  if [[ $comm != "$name" ]]; then
    say "$name (pid $pid) is not running (pid $pid is now '$comm'; left alone)"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    alive "$pid" || { say "stopped $name (pid $pid)"; return 0; }
    sleep 0.1
  done
  say "$name (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || { say "killed $name (pid $pid)"; return 0; }
    sleep 0.1
  done
  echo "slurm_down: error: $name (pid $pid) is still running" >&2
  failed=1
}

ours() {  # ours PID: the process runs with this cluster's SLURM_CONF in its environment
  tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF"
}

# Jobs first, so that slurmd can clean up their steps while it still runs.
pid=$(cat "$ROOT/run/slurmctld.pid" 2>/dev/null || true)
if alive "$pid" && timeout 10 scontrol ping >/dev/null 2>&1; then
  jobs=$(timeout 10 squeue -h -o %A 2>/dev/null || true)
  if [[ -n $jobs ]]; then
    say "cancelling jobs: $(echo $jobs)"
    # shellcheck disable=SC2086
    timeout 10 scancel $jobs 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
      [[ -z $(timeout 10 squeue -h -o %A 2>/dev/null || true) ]] && break
      sleep 0.5
    done
  fi
fi

for d in slurmd slurmctld slurmdbd mariadbd munged; do
  f="$ROOT/run/$d.pid"
  if [[ $d == munged && -f "$ROOT/run/munged.reused" ]]; then
    say "leaving the reused munged running"
    rm -f "$ROOT/run/munged.reused"
    continue
  fi
  [[ -s $f ]] || continue
  stop_pid "$d" "$(cat "$f")"
  if [[ $d == slurmd ]]; then
    # Job steps that outlived slurmd (stopped by PID; only this cluster's).
    for p in /proc/[0-9]*; do
      p=${p#/proc/}
      [[ $(cat "/proc/$p/comm" 2>/dev/null) == slurmstepd ]] && ours "$p" && stop_pid slurmstepd "$p"
    done
  fi
  ((failed)) || rm -f "$f"
done
rm -f "$ROOT/run/up"

link=$(cat "$ROOT/run/etc-link" 2>/dev/null || true)
if [[ -n $link && -L $link && $(readlink "$link") == "$SLURM_CONF" ]]; then
  rm -f "$link"
  rm -f "$ROOT/run/etc-link"
fi

if ((failed)); then
  die "some processes could not be stopped (see above)"
fi
say "all daemons under $ROOT are stopped"
