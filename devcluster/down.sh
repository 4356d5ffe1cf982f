#!/usr/bin/env bash
# Stops the local development cluster started by devcluster/up.sh and removes its state
# (REPO/.devcluster). Order: pod runner (`python -m podrunner`: it kills its pods' processes and
# removes the mount points it created), Prometheus, scheduler, controller-manager, API server,
# then etcd (the API server must go first, or it takes ~25 s to exit). Idempotent: with nothing
# running it only makes sure the state is gone.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
STATE="$REPO/.devcluster"
LOGS="$STATE/logs"
PIDS="$STATE/pids"

log() { printf '[devcluster] %s\n' "$*" >&2; }
die() { printf '[devcluster] ERROR: %s\n' "$*" >&2; exit 1; }

# Same lock as up.sh (unless up.sh, which holds it, runs us).
if [[ "${DEVCLUSTER_LOCKED:-0}" != 1 ]]; then
  exec 8<"$HERE/up.sh"
  flock 8
fi

# shellcheck source=devcluster/lib.sh
source "$HERE/lib.sh"

if [[ ! -d "$STATE" ]]; then
  log "not running (no $STATE)"
  exit 0
fi

stop_daemon podrunner 20
# Pod processes a crashed pod runner may have left: kill their process groups (the recorded
# start time guards against a reused pid).
shopt -s nullglob
for f in "$STATE"/pods/run/*/pid; do
  read -r pid start <"$f" || continue
  [[ "$pid" =~ ^[0-9]+$ ]] || continue
  now_start="$(awk '{print $22}' "/proc/$pid/stat" 2>/dev/null || true)"
  if [[ -n "$now_start" && "$now_start" == "$start" ]]; then
    log "killing leftover pod process group $pid"
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
done
shopt -u nullglob
# Empty mount points the pod runner created on the host (normally it removes them itself).
if [[ -f "$STATE/pods/mountpoints.txt" ]]; then
  sort -ru "$STATE/pods/mountpoints.txt" | while IFS= read -r p; do
    [[ -n "$p" ]] || continue
    if [[ -d "$p" && ! -L "$p" ]]; then
      rmdir "$p" 2>/dev/null || true
    elif [[ -f "$p" && ! -s "$p" ]]; then
      rm -f "$p"
    fi
  done
fi

stop_daemon prometheus 10
stop_daemon kube-scheduler 10
stop_daemon kube-controller-manager 10
stop_daemon kube-apiserver 15
stop_daemon etcd 15

rm -rf "$STATE"
log "down"
