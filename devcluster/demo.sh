#!/usr/bin/env bash
# `make demo-cluster`: the quickstart sweep on the dev cluster, end to end, in one command.
#
#   1. the dev cluster (devcluster/up.sh, idempotent: reuses a running one);
#   2. the operator (`bertsweep operator`) in the background, watching one namespace;
#   3. `kubectl apply -f examples/quickstart-cluster.yaml`;
#   4. progress as `kubectl get bertsweeps` shows it, until the sweep ends;
#   5. the trials, and the best one's parameters and metrics.
#
# Env: DEMO_NAMESPACE (default bertsweep-demo), DEMO_TIMEOUT (seconds, default 1800),
#      DEMO_MANIFEST (default examples/quickstart-cluster.yaml).
# The operator's log: .devcluster/logs/demo-operator.log. The sweep stays in the cluster
# afterwards (kubectl -n bertsweep-demo get berttrials); a second run starts it afresh.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
NS="${DEMO_NAMESPACE:-bertsweep-demo}"
TIMEOUT="${DEMO_TIMEOUT:-1800}"
MANIFEST="${DEMO_MANIFEST:-$REPO/examples/quickstart-cluster.yaml}"
SWEEP="$(awk '/^metadata:/{m=1} m && /^  name:/{print $2; exit}' "$MANIFEST")"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

"$HERE/up.sh"
# shellcheck source=/dev/null
source "$REPO/.devcluster/env"
k() { kubectl -n "$NS" "$@"; }

kubectl get namespace "$NS" >/dev/null 2>&1 || kubectl create namespace "$NS" >/dev/null

say "starting the operator (log: .devcluster/logs/demo-operator.log)"
OPERATOR_LOG="$REPO/.devcluster/logs/demo-operator.log"
"$REPO/.venv/bin/bertsweep" operator --namespace "$NS" >"$OPERATOR_LOG" 2>&1 &
OPERATOR_PID=$!
stop_operator() {
  kill -INT "$OPERATOR_PID" 2>/dev/null || true
  wait "$OPERATOR_PID" 2>/dev/null || true
}
trap stop_operator EXIT

# A fresh run: the previous one's trials and pods go first (foreground cascade waits for them).
if k get bertsweep "$SWEEP" >/dev/null 2>&1; then
  say "deleting the previous $SWEEP sweep"
  k delete bertsweep "$SWEEP" --cascade=foreground --wait --timeout=180s
fi

say "kubectl -n $NS apply -f ${MANIFEST#"$REPO"/}"
k apply -f "$MANIFEST"

say "watching kubectl get bertsweeps (trials appear as they start)"
deadline=$((SECONDS + TIMEOUT))
last=""
phase=""
header_done=""
while ((SECONDS < deadline)); do
  if ! kill -0 "$OPERATOR_PID" 2>/dev/null; then
    tail -n 30 "$OPERATOR_LOG" >&2
    echo "the operator exited (log above)" >&2
    exit 1
  fi
  table="$(k get bertsweep "$SWEEP" 2>/dev/null || true)"
  if [[ -n "$table" ]]; then
    [[ -n "$header_done" ]] || { echo "$table" | head -n 1; header_done=1; }
    row="$(echo "$table" | tail -n 1)"
    # Age changes every second; print a row only when something else did.
    key="$(echo "$row" | awk '{$NF=""; print}')"
    if [[ "$key" != "$last" ]]; then
      echo "$row"
      last="$key"
    fi
  fi
  phase="$(k get bertsweep "$SWEEP" -o jsonpath='{.status.phase}' 2>/dev/null || true)"
  [[ "$phase" == Succeeded || "$phase" == Failed ]] && break
  sleep 3
done

say "trials: kubectl get berttrials -l bertsweep=$SWEEP"
k get berttrials -l "bertsweep=$SWEEP" -o wide || true

if [[ "$phase" != Succeeded && "$phase" != Failed ]]; then
  echo "the sweep did not end within ${TIMEOUT}s (phase: ${phase:-none})" >&2
  exit 1
fi

say "the sweep: $phase"
k get bertsweep "$SWEEP" \
  -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}'

say "best trial"
k get bertsweep "$SWEEP" -o json | "$REPO/.venv/bin/python" -c '
import json, sys, yaml
status = json.load(sys.stdin)["status"]
best = status.get("bestTrial")
if not best:
    print("no trial succeeded")
    sys.exit(1)
print(yaml.safe_dump(best, sort_keys=False), end="")
'
[[ "$phase" == Succeeded ]]
