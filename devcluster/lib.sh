# Helpers shared by devcluster/up.sh and devcluster/down.sh (sourced, not run).
# Expects: STATE, LOGS, PIDS, log(), die().

# The daemons, in start order; down.sh stops them in reverse (API server before etcd).
DAEMONS=(etcd kube-apiserver kube-controller-manager kube-scheduler prometheus podrunner)

# A string that the daemon's /proc/PID/cmdline contains (guards against a reused pid). The pod
# runner's is `python -m podrunner` (it was `python .../podrunner.py`: both match).
daemon_pattern() {
  echo "$1"
}

# The pid of daemon $1 if it runs, else nothing (and status 1).
daemon_pid() {
  local f="$PIDS/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(<"$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$(daemon_pattern "$1")" || return 1
  echo "$pid"
}

# N free TCP ports on 127.0.0.1, space-separated.
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# start_daemon NAME CMD...: runs CMD in its own session (survives the calling shell), output to
# LOGS/NAME.log, pid in PIDS/NAME.pid.
start_daemon() {
  local name="$1"
  shift
  rm -f "$PIDS/$name.pid"
  # The pid file is written by the process that then execs CMD, so it is CMD's pid whether or
  # not setsid had to fork. fds 8/9 (the scripts' locks) are not inherited.
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDS/$name.pid" "$@" \
    </dev/null >>"$LOGS/$name.log" 2>&1 8<&- 9<&- &
  disown
  local i
  for i in $(seq 50); do
    [[ -s "$PIDS/$name.pid" ]] && return 0
    sleep 0.1
  done
  die "$name did not start (see $LOGS/$name.log)"
}

# wait_for LABEL TIMEOUT_S CONDITION [DAEMON]: polls CONDITION (a shell command, eval'ed) every
# 0.25 s. Fails early, with the tail of its log, when DAEMON (default: LABEL) has died.
wait_for() {
  local label="$1" timeout="$2" cond="$3" daemon="${4:-$1}"
  local deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    if eval "$cond"; then
      return 0
    fi
    if [[ -f "$PIDS/$daemon.pid" ]] && ! daemon_pid "$daemon" >/dev/null; then
      log "$daemon exited; last lines of $LOGS/$daemon.log:"
      tail -n 25 "$LOGS/$daemon.log" >&2 || true
      die "$daemon died while waiting for $label"
    fi
    sleep 0.25
  done
  log "timed out after ${timeout}s waiting for $label"
  [[ -f "$LOGS/$daemon.log" ]] && { tail -n 25 "$LOGS/$daemon.log" >&2 || true; }
  return 1
}

# True when etcd and the API server run and the API server is ready.
core_healthy() {
  local d token
  [[ -f "$STATE/env" && -f "$STATE/ports" && -f "$STATE/pki/tokens.csv" ]] || return 1
  for d in etcd kube-apiserver; do
    daemon_pid "$d" >/dev/null || return 1
  done
  # shellcheck disable=SC1091
  source "$STATE/ports"
  token="$(cut -d, -f1 "$STATE/pki/tokens.csv")"
  curl -sfk -m 5 -H "Authorization: Bearer $token" "https://127.0.0.1:$API_PORT/readyz" \
    | grep -q ok || return 1
}

# True when every daemon runs and the API server and Prometheus answer.
cluster_healthy() {
  local d
  core_healthy || return 1
  for d in "${DAEMONS[@]}"; do
    daemon_pid "$d" >/dev/null || return 1
  done
  curl -sf -m 5 "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null || return 1
}

# stop_daemon NAME TIMEOUT_S: SIGTERM, then SIGKILL after TIMEOUT_S.
stop_daemon() {
  local name="$1" timeout="$2" pid i
  if pid="$(daemon_pid "$name")"; then
    kill -TERM "$pid" 2>/dev/null || true
    # (daemon_pid, not kill -0: an exited daemon may linger as a zombie with an empty cmdline)
    for i in $(seq $((timeout * 10))); do
      daemon_pid "$name" >/dev/null || break
      sleep 0.1
    done
    if daemon_pid "$name" >/dev/null; then
      log "$name (pid $pid) did not stop in ${timeout}s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$PIDS/$name.pid"
}
