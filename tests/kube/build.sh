#!/usr/bin/env bash
# Builds (or reuses) etcd, kube-apiserver, kube-controller-manager and kubectl from the upstream
# Go modules pinned in go.mod. Binaries are cached per version under
#   ${JITGRANT_KUBE_CACHE:-~/.cache/jitgrant/kube}/<kubernetes version>/
# so only the first run compiles. Progress goes to stderr; the last line on stdout is the
# directory holding the binaries (controlplane.py reads it).
# With --node it also builds (or reuses) the node half, for make e2e: kubelet, kube-proxy,
# kube-scheduler and a pause program (the pod sandbox), from node/go.mod (the same pinned versions;
# a module of its own so the control plane's stamp does not change), with the same version stamps
# and a stamp of their own (.stamp-node) in the same directory.
# Exit codes: 0 ok, 2 no Go toolchain, anything else a failed build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

say() { echo "kube: $*" >&2; }

with_node=""
[[ "${1:-}" == "--node" ]] && with_node=1

if ! command -v go >/dev/null 2>&1; then
    say "no Go toolchain on PATH: cannot build the control plane"
    exit 2
fi

version="$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' go.mod)"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2; exit}' go.mod)"
cache_root="${JITGRANT_KUBE_CACHE:-${HOME}/.cache/jitgrant/kube}"
dest="${cache_root}/${version}"
binaries=(etcd kube-apiserver kube-controller-manager kubectl)

# The stamp covers what changes the binaries: the pinned modules (the -X version flags derive from
# go.mod), the etcd main and the toolchain. Change BUILD_FLAGS_REVISION when editing the flags below.
BUILD_FLAGS_REVISION=""
stamp="$(cat go.mod go.sum cmd/etcd/main.go | sha256sum | cut -c1-16)-$(go env GOVERSION)${BUILD_FLAGS_REVISION}"

complete() {
    [[ -f "${dest}/.stamp" && "$(cat "${dest}/.stamp")" == "$stamp" ]] || return 1
    local b
    for b in "${binaries[@]}"; do [[ -x "${dest}/${b}" ]] || return 1; done
}

mkdir -p "$cache_root"
# One build at a time: `make test` and a pytest session may both ask.
exec 9>"${cache_root}/.lock"
flock 9

version_ldflags() { # the -X flags that stamp every binary with the pinned version
    local p flags="-s -w" minor="${version#v1.}"
    minor="${minor%%.*}"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        flags+=" -X ${p}.gitVersion=${version} -X ${p}.gitMajor=1 -X ${p}.gitMinor=${minor}"
        flags+=" -X ${p}.gitTreeState=clean -X ${p}.buildDate=1970-01-01T00:00:00Z"
    done
    echo "$flags"
}

node_binaries=(kubelet kube-proxy kube-scheduler pause)
node_stamp="$(cat node/go.mod node/go.sum node/cmd/pause/main.go | sha256sum | cut -c1-16)-$(go env GOVERSION)"
build_node() { # into ${dest}, beside the control plane, unless its stamp says they are current
    local b ok=1
    for b in "${node_binaries[@]}"; do [[ -x "${dest}/${b}" ]] || ok=""; done
    if [[ -n "$ok" && -f "${dest}/.stamp-node" && "$(cat "${dest}/.stamp-node")" == "$node_stamp" ]]; then
        say "reusing kubelet, kube-proxy, kube-scheduler ${version} from ${dest}"
        return
    fi
    say "building kubelet, kube-proxy, kube-scheduler ${version} and pause into ${dest} (a few minutes on a warm Go cache)"
    local node_start node_staging
    node_start=$(date +%s)
    node_staging="$(mktemp -d "${cache_root}/.build-node-XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '${node_staging}'" RETURN
    (cd node && go mod download && CGO_ENABLED=0 go build -p 2 -trimpath -ldflags="$(version_ldflags)" \
        -o "${node_staging}/" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy \
        k8s.io/kubernetes/cmd/kube-scheduler ./cmd/pause)
    for b in "${node_binaries[@]}"; do mv -f "${node_staging}/${b}" "${dest}/${b}"; done
    echo "$node_stamp" >"${dest}/.stamp-node"
    say "built the node binaries in $(( $(date +%s) - node_start ))s"
}

if complete; then
    say "reusing kubernetes ${version} + etcd ${etcd_version} from ${dest} (${SECONDS}s)"
    [[ -z "$with_node" ]] || build_node
    echo "$dest"
    exit 0
fi

say "building kubernetes ${version} + etcd ${etcd_version} with $(go env GOVERSION) into ${dest}"
say "the first build compiles ~3000 packages and takes tens of minutes on 2 cores; later runs reuse it"
start=$(date +%s)
staging="$(mktemp -d "${cache_root}/.build-XXXXXX")"
heartbeat_pid=""
cleanup() {
    [[ -n "$heartbeat_pid" ]] && kill "$heartbeat_pid" 2>/dev/null || true
    rm -rf "$staging"
}
trap cleanup EXIT
# A line a minute, so CI logs show the build is alive. It must not hold the lock (fd 9), and it
# sleeps in short steps so it ends within seconds of the build.
(
    exec 9>&-
    while true; do
        for _ in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 5; done
        say "still building... $(( $(date +%s) - start ))s"
    done
) &
heartbeat_pid=$!

ldflags="$(version_ldflags)"

say "downloading modules (Go module proxy)"
go mod download
say "compiling (go build -p 2)"
CGO_ENABLED=0 go build -p 2 -trimpath -ldflags="$ldflags" -o "${staging}/" \
    ./cmd/etcd \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl
echo "$stamp" >"${staging}/.stamp"
chmod 755 "$staging"

rm -rf "$dest"
mv "$staging" "$dest"
elapsed=$(( $(date +%s) - start ))
say "built kubernetes ${version} + etcd ${etcd_version} in ${elapsed}s ($(( elapsed / 60 ))m$(( elapsed % 60 ))s) -> ${dest}"
[[ -z "$with_node" ]] || build_node
echo "$dest"
