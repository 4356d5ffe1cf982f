#!/usr/bin/env bash
# Starts BertSweep's local development cluster: a real Kubernetes 1.20 control plane (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler), one Node `bertsweep-dev` whose pods
# run as local processes (the package devcluster/podrunner plays the kubelet, run as
# `PYTHONPATH=devcluster .venv/bin/python -m podrunner`, log in .devcluster/logs/podrunner.log),
# and Prometheus scraping those pods. Everything listens on 127.0.0.1 (pods on 127.1.x.y) on free
# ports; the API server reaches the node (for `kubectl logs`) at 127.0.0.1 too, never by name.
#
# State, logs and pid files: REPO/.devcluster/ (removed by devcluster/down.sh).
# Use it:   source .devcluster/env    # KUBECONFIG, PROMETHEUS_URL, PATH (+kubectl, helm)
# Env: BERTSWEEP_CACHE (binary cache root, default ~/.cache/bertsweep),
#      DEVCLUSTER_SKIP_CRDS=1 (do not install crds/*.yaml),
#      DEVCLUSTER_SIMULATE_IN_PROCESS=0 (run simulated trainer pods as processes too; by default
#      the pod runner plays `bertsweep-trainer --simulate` pods in-process, a thread each: see
#      devcluster/podrunner/inprocess.py).
#
# Idempotent: when the cluster is already up and healthy it (re)applies crds/ and exits 0; when
# only a peripheral daemon (controller-manager, scheduler, Prometheus, pod runner) died, it is
# restarted in place; anything else broken is torn down (devcluster/down.sh) and started afresh.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
STATE="$REPO/.devcluster"
LOGS="$STATE/logs"
PIDS="$STATE/pids"
PKI="$STATE/pki"
NODE="bertsweep-dev"
CACHE_BIN="${BERTSWEEP_CACHE:-$HOME/.cache/bertsweep}/kube-1.20/bin"
PY="$REPO/.venv/bin/python"
KUBECONFIG_FILE="$STATE/kubeconfig"
SD_FILE="$STATE/prometheus/targets.json"

log() { printf '[devcluster] %s\n' "$*" >&2; }
die() { printf '[devcluster] ERROR: %s\n' "$*" >&2; exit 1; }

# Serialise up.sh/down.sh (the lock is on this script file: nothing is written for it).
exec 8<"$HERE/up.sh"
flock 8
export DEVCLUSTER_LOCKED=1 # down.sh, run from here, must not wait for our lock

# shellcheck source=devcluster/lib.sh
source "$HERE/lib.sh"

t0=$SECONDS

# ----------------------------------------------------------------------------- tools
check_tools() {
  [[ -x "$PY" ]] || die "$PY not found: run \`make setup\` first (the pod runner needs the repo's venv)"
  "$PY" -c 'import kubernetes' 2>/dev/null \
    || die "the venv lacks the kubernetes client: run \`make setup\`"
  "$HERE/build.sh"
  local b t
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    [[ -x "$CACHE_BIN/$b" ]] || die "$CACHE_BIN/$b missing after build.sh"
  done
  KUBECTL="$(command -v kubectl || true)"
  [[ -n "$KUBECTL" ]] || KUBECTL="$CACHE_BIN/kubectl"
  [[ -x "$KUBECTL" ]] || die "no kubectl on PATH nor in $CACHE_BIN"
  for t in etcd prometheus openssl curl setsid unshare flock python3; do
    command -v "$t" >/dev/null || die "$t not found on PATH"
  done
}

kc() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

load_ports() {
  # shellcheck disable=SC1091
  source "$STATE/ports"
  TOKEN="$(cut -d, -f1 "$PKI/tokens.csv")"
  KUBELET_PORT="${KUBELET_PORT:-0}" # (absent from the ports of a cluster started before it was)
  API_URL="https://127.0.0.1:$API_PORT"
  PROM_URL="http://127.0.0.1:$PROM_PORT"
}

# ----------------------------------------------------------------------------- daemons
start_etcd() {
  start_daemon etcd etcd --name bertsweep-dev --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "bertsweep-dev=http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster-state new --logger zap --log-level warn
  wait_for etcd 30 "curl -sf -m 5 http://127.0.0.1:$ETCD_PORT/health | grep -q '\"health\":\"true\"'" \
    || die "etcd did not become healthy"
}

start_apiserver() {
  start_daemon kube-apiserver "$CACHE_BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --cert-dir="$PKI" --token-auth-file="$PKI/tokens.csv" \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --authorization-mode=RBAC --disable-admission-plugins=ServiceAccount \
    --kubelet-preferred-address-types=InternalIP \
    --kubelet-client-certificate="$PKI/kubelet-client.crt" \
    --kubelet-client-key="$PKI/kubelet-client.key" \
    --allow-privileged=true --profiling=false --v=1
  wait_for kube-apiserver 90 \
    "curl -sfk -m 5 -H 'Authorization: Bearer $TOKEN' $API_URL/readyz | grep -q ok" \
    || die "kube-apiserver did not become ready"
}

# No node lifecycle controller: nothing here posts kubelet leases; the pod runner keeps the node
# Ready itself. The garbage collector (ownerReferences), ReplicaSets, Jobs, ... all run.
start_controller_manager() {
  start_daemon kube-controller-manager "$CACHE_BIN/kube-controller-manager" \
    --kubeconfig="$KUBECONFIG_FILE" --leader-elect=false --secure-port=0 --port=0 \
    --controllers='*,-nodelifecycle' --service-account-private-key-file="$PKI/sa.key" \
    --root-ca-file="$PKI/apiserver.crt" --profiling=false --v=1
}

start_scheduler() {
  start_daemon kube-scheduler "$CACHE_BIN/kube-scheduler" \
    --kubeconfig="$KUBECONFIG_FILE" --leader-elect=false --secure-port=0 --port=0 \
    --profiling=false --v=1
}

start_prometheus() {
  [[ -f "$SD_FILE" ]] || echo '[]' >"$SD_FILE"
  cat >"$STATE/prometheus/prometheus.yml" <<EOF
# Generated by devcluster/up.sh. Pods are published by devcluster/podrunner (file_sd),
# with the labels namespace, pod and every pod label (sanitized like kubernetes_sd+labelmap).
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
- job_name: pods
  file_sd_configs:
  - files: ['$SD_FILE']
    refresh_interval: 1s
EOF
  start_daemon prometheus prometheus --config.file="$STATE/prometheus/prometheus.yml" \
    --storage.tsdb.path="$STATE/prometheus/data" --storage.tsdb.retention.time=1d \
    --web.listen-address="127.0.0.1:$PROM_PORT" --web.enable-lifecycle --log.level=warn
}

# The kubelet API's TLS (the API server talks nothing else to a kubelet): a self-signed server
# certificate, which the API server does not verify (no --kubelet-certificate-authority), and a
# client certificate for the API server, the only client the pod runner serves.
ensure_kubelet_pki() {
  local name cn
  for name in kubelet kubelet-client; do
    [[ -s "$PKI/$name.crt" && -s "$PKI/$name.key" ]] && continue
    cn="$NODE"
    [[ "$name" == kubelet-client ]] && cn="kube-apiserver-kubelet-client"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -subj "/CN=$cn" -addext "subjectAltName=IP:127.0.0.1,DNS:$NODE" \
      -keyout "$PKI/$name.key" -out "$PKI/$name.crt" 2>/dev/null \
      || die "openssl could not make $PKI/$name.crt"
    chmod 600 "$PKI/$name.key"
  done
}

# `-m podrunner` with devcluster/ on the module path: the package is not installed anywhere.
# (Pods do not inherit PYTHONPATH: the runner builds their environment from scratch.)
# Simulated trainer pods (benchmarks of the operator) run in-process unless
# DEVCLUSTER_SIMULATE_IN_PROCESS=0: as processes, starting them is what fills this machine's
# cores at a few dozen trials a second, not the operator (benchmarks/README.md, "Operator scale").
start_podrunner() {
  local extra=()
  [[ "${DEVCLUSTER_SIMULATE_IN_PROCESS:-1}" == 0 ]] || extra+=(--simulate-in-process)
  ensure_kubelet_pki
  start_daemon podrunner env PYTHONPATH="$HERE" "$PY" -m podrunner \
    --kubeconfig "$KUBECONFIG_FILE" --node-name "$NODE" --state-dir "$STATE" \
    --sd-file "$SD_FILE" --kubelet-port "$KUBELET_PORT" \
    --tls-cert-file "$PKI/kubelet.crt" --tls-private-key-file "$PKI/kubelet.key" \
    --client-ca-file "$PKI/kubelet-client.crt" "${extra[@]}"
}

wait_ready() {
  wait_for prometheus 30 "curl -sf -m 5 $PROM_URL/-/ready >/dev/null" \
    || die "Prometheus did not become ready"
  wait_for "node $NODE Ready" 60 \
    "[[ \"\$(kc get node $NODE -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' 2>/dev/null)\" == True ]]" \
    podrunner || die "node $NODE did not become Ready (see $LOGS/podrunner.log)"
  if ((KUBELET_PORT > 0)); then
    wait_for "the pod runner's kubelet API" 30 \
      "curl -sfk -m 5 --cert $PKI/kubelet-client.crt --key $PKI/kubelet-client.key \
        https://127.0.0.1:$KUBELET_PORT/healthz | grep -q ok" podrunner \
      || die "the pod runner's kubelet API does not answer (see $LOGS/podrunner.log)"
  fi
}

install_crds() {
  local crd_files
  shopt -s nullglob
  crd_files=("$REPO"/crds/*.yaml "$REPO"/crds/*.yml)
  shopt -u nullglob
  if [[ "${DEVCLUSTER_SKIP_CRDS:-0}" == 1 ]]; then
    log "DEVCLUSTER_SKIP_CRDS=1: not installing crds/"
  elif ((${#crd_files[@]} > 0)); then
    kc apply -f "$REPO/crds/" >"$LOGS/crds.log" 2>&1 \
      || { cat "$LOGS/crds.log" >&2; die "kubectl apply -f crds/ failed (the CRDs must install \
on Kubernetes 1.20; DEVCLUSTER_SKIP_CRDS=1 skips them)"; }
    kc wait --for=condition=Established --timeout=60s -f "$REPO/crds/" >>"$LOGS/crds.log" 2>&1 \
      || { cat "$LOGS/crds.log" >&2; die "CRDs did not become Established"; }
    log "CRDs installed: $(kc get crd -o name | sed 's|.*/||' | tr '\n' ' ')"
  fi
}

write_env() {
  cat >"$STATE/env" <<EOF
# Generated by devcluster/up.sh: source it to use the dev cluster.
export KUBECONFIG=$(printf '%q' "$KUBECONFIG_FILE")
export PROMETHEUS_URL=$PROM_URL
export KUBE_API_URL=$API_URL
export BERTSWEEP_DEVCLUSTER=$(printf '%q' "$STATE")
export BERTSWEEP_DEVCLUSTER_NODE=$NODE
# The dev cluster's data lives on this machine: an operator run here may mount it (hostPath).
export BERTSWEEP_ALLOW_HOST_PATH=true
export PATH=$(printf '%q' "$CACHE_BIN"):"\$PATH"
EOF
}

# ----------------------------------------------------------------------------- already up?
if [[ -f "$STATE/env" ]]; then
  if cluster_healthy; then
    check_tools
    load_ports
    install_crds
    log "already up and healthy: source $STATE/env"
    exit 0
  fi
  if core_healthy; then
    check_tools
    load_ports
    for d in kube-controller-manager kube-scheduler prometheus podrunner; do
      if ! daemon_pid "$d" >/dev/null; then
        log "$d is not running; restarting it"
        case "$d" in
          kube-controller-manager) start_controller_manager ;;
          kube-scheduler) start_scheduler ;;
          prometheus) start_prometheus ;;
          podrunner) start_podrunner ;;
        esac
      fi
    done
    wait_ready
    install_crds
    log "repaired in $((SECONDS - t0)) s: source $STATE/env"
    exit 0
  fi
  log "found a broken dev cluster; tearing it down first"
  "$HERE/down.sh"
elif [[ -d "$STATE" ]]; then
  "$HERE/down.sh"
fi

# ----------------------------------------------------------------------------- fresh start
check_tools
mkdir -p "$LOGS" "$PIDS" "$PKI" "$STATE/prometheus/data" "$STATE/pods"

read -r ETCD_PORT ETCD_PEER_PORT API_PORT PROM_PORT KUBELET_PORT < <(free_ports 5)
cat >"$STATE/ports" <<EOF
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
API_PORT=$API_PORT
PROM_PORT=$PROM_PORT
KUBELET_PORT=$KUBELET_PORT
EOF
printf '%s,admin,admin,"system:masters"\n' "$(openssl rand -hex 24)" >"$PKI/tokens.csv"
openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
chmod 600 "$PKI/tokens.csv" "$PKI/sa.key"
ensure_kubelet_pki
load_ports
cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: bertsweep-dev
  cluster:
    server: $API_URL
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: $TOKEN
contexts:
- name: bertsweep-dev
  context:
    cluster: bertsweep-dev
    user: admin
    namespace: default
current-context: bertsweep-dev
EOF
chmod 600 "$KUBECONFIG_FILE"

start_etcd
start_apiserver
start_controller_manager
start_scheduler
start_prometheus
start_podrunner
wait_ready
wait_for "namespace default" 30 "kc get namespace default >/dev/null 2>&1" kube-apiserver \
  || die "namespace default missing"
if ! wait_for "serviceaccount default/default" 30 \
  "kc -n default get serviceaccount default >/dev/null 2>&1" kube-controller-manager 2>/dev/null; then
  log "the serviceaccount controller did not create default/default; creating it"
  kc -n default create serviceaccount default >/dev/null
fi
write_env
install_crds
log "up in $((SECONDS - t0)) s: API $API_URL, Prometheus $PROM_URL, node $NODE"
log "use it: source $STATE/env   (stop: devcluster/down.sh)"
