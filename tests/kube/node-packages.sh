#!/usr/bin/env bash
# The Debian packages a real node needs (make e2e): containerd, runc, the CNI plugins, iptables and
# conntrack. Installed with apt-get when missing and running as root, as tests/image/build.sh
# installs buildah; otherwise one line says what is missing and the exit code is 3.
set -euo pipefail
say() { echo "node: $*" >&2; }

# command -> Debian package (the CNI plugins are files, not commands on PATH)
declare -A wanted=(
    [containerd]=containerd [ctr]=containerd [runc]=runc [iptables]=iptables [conntrack]=conntrack
    [/usr/lib/cni/bridge]=containernetworking-plugins [/usr/lib/cni/host-local]=containernetworking-plugins
    [/usr/lib/cni/loopback]=containernetworking-plugins
)
missing=()
for tool in "${!wanted[@]}"; do
    if [[ "$tool" == /* ]]; then [[ -x "$tool" ]] && continue; else command -v "$tool" >/dev/null 2>&1 && continue; fi
    pkg="${wanted[$tool]}"
    [[ " ${missing[*]} " == *" ${pkg} "* ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    say "missing Debian packages ${missing[*]}, and no apt-get as root to install them: no node can run here"
    exit 3
fi
say "installing ${missing[*]} (Debian packages)"
apt-get update -q >&2
# containerd's package would start its own service where systemd runs; the launcher runs its own
# containerd with its own config and sockets, so none is started here (policy-rc.d refuses).
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || {
    say "apt-get could not install ${missing[*]}: no node can run here"
    exit 3
}
