"""A real single-node cluster: the `ControlPlane` plus containerd, kubelet, kube-proxy and kube-scheduler.

Built for `make e2e` (issue 23): the operator image runs as Pods, the webhooks are reached through
their Service, agents are Pods with projected ServiceAccount tokens. The node binaries come from
`tests/kube/build.sh --node` (the same pinned Kubernetes version and version stamps as the control
plane); containerd, runc, the CNI plugins, iptables and conntrack are Debian packages that
`tests/kube/node-packages.sh` installs when missing (root + apt-get).

No image can be pulled on a machine without a registry, so the sandbox (pause) image is packed here
from the `pause` program build.sh compiled, and every image a test needs is imported with
`ctr images import` (`Node.import_image`).

What this machine needed (each cost time to find, see issue 23):
- runc cannot write /proc/self/oom_score_adj when root lacks CAP_SYS_RESOURCE: containerd's CRI
  config sets `restrict_oom_score_adj = true`;
- the kubelet refuses cgroup v1 unless `failCgroupV1: false` (also `failSwapOn: false`, cgroupfs);
- the host name resolves to 127.0.0.1, so the API server reaches the kubelet by InternalIP
  (`--kubelet-preferred-address-types`), and advertises the host's address so that pods reach it
  through the `kubernetes` Service;
- `net.ipv4.ip_forward` (and bridge-nf-call-iptables, for Service traffic between pods on one
  bridge) must be 1 while the cluster runs: both are set on start and restored on stop.

Host-global names are parameters (`NodeSettings`: node name, bridge and pod subnet, CNI network name;
ports are picked free, directories are temporary). kube-proxy's iptables chains (KUBE-SERVICES, ...)
are fixed upstream names in the host's network namespace, so only one node runs per machine at a
time: a second one waits for the first (a host-wide lock) rather than corrupt its rules.
Teardown (`stop`, also on every failed start) deletes the pods through the kubelet (so the CNI plugin
releases addresses and rules), stops every process, kills what containerd left, runs
`kube-proxy --cleanup`, deletes the bridge and the pod cgroups, restores the sysctls and removes the
directory.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from jitgrant_testing.controlplane import (
    BUILD_SCRIPT,
    DEFAULT_USERS,
    ControlPlane,
    ControlPlaneError,
    _Process,
    free_port,
)
from jitgrant_testing.tls import certificate, name, pem_key

PACKAGES_SCRIPT = BUILD_SCRIPT.parent / "node-packages.sh"
NODE_BINARIES = ("kubelet", "kube-proxy", "kube-scheduler", "pause")
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
PAUSE_IMAGE = "localhost/jitgrant-pause:1.0"
K8S_NAMESPACE = "k8s.io"  # containerd namespace the CRI plugin uses
HOST_LOCK = Path("/run/lock/jitgrant-node.lock")
# (table, chain, chains that jump to it) the kubelet creates in the host's network namespace.
KUBELET_CHAINS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("filter", "KUBE-FIREWALL", ("INPUT", "OUTPUT")),
    ("filter", "KUBE-KUBELET-CANARY", ()),
    ("nat", "KUBE-KUBELET-CANARY", ()),
    ("mangle", "KUBE-KUBELET-CANARY", ()),
    ("mangle", "KUBE-IPTABLES-HINT", ()),
)
SYSCTLS = ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables")


class NodeError(ControlPlaneError):
    """The node could not be brought up (or its prerequisites are missing)."""


class NodeUnavailable(NodeError):
    """This machine cannot run a node (not root, no apt-get for the packages, no Go): say so once."""


@dataclass(frozen=True)
class NodeSettings:
    """Every host-global name the node uses; two runs with different settings do not collide."""

    node_name: str = "jitgrant-e2e"
    bridge: str = "jg-e2e0"  # at most 15 characters (IFNAMSIZ)
    pod_subnet: str = "10.244.71.0/24"
    cni_network: str = "jitgrant-e2e"
    node_ip: str = ""  # default: the address of the default route's interface
    lock_timeout: float = 600.0  # waiting for another node on this machine to stop

    def __post_init__(self) -> None:
        if not 0 < len(self.bridge) <= 15:
            raise ValueError(f"bridge: {self.bridge!r} must be 1-15 characters (a Linux interface name)")


def default_node_ip() -> str:
    """The source address the kernel picks for the outside world (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("192.0.2.1", 9))  # TEST-NET-1: routing only
        address: str = sock.getsockname()[0]
    if address.startswith("127."):
        raise NodeError("node_ip: no non-loopback address found; pass NodeSettings(node_ip=...)")
    return address


def ensure_node_prerequisites(*, stream: bool = True) -> Path:
    """Install the Debian packages (when missing) and build the node binaries; return the bin dir."""
    if os.geteuid() != 0:
        raise NodeUnavailable("a node needs root (containerd, iptables, network namespaces): run as root")
    if shutil.which("go") is None and not os.environ.get("JITGRANT_KUBE_BIN"):
        raise NodeUnavailable("no Go toolchain on PATH (needed to build kubelet from source)")
    packages = subprocess.run(  # noqa: S603 - our own script
        ["/bin/bash", str(PACKAGES_SCRIPT)],
        stdout=subprocess.DEVNULL,
        stderr=None if stream else subprocess.PIPE,
        text=True,
        check=False,
    )
    if packages.returncode == 3:
        raise NodeUnavailable("the node's Debian packages are missing and cannot be installed here")
    if packages.returncode != 0:
        raise NodeError(f"{PACKAGES_SCRIPT} failed with exit code {packages.returncode}")
    prebuilt = os.environ.get("JITGRANT_KUBE_BIN")
    if prebuilt:
        return Path(prebuilt)
    proc = subprocess.run(  # noqa: S603 - our own script
        ["/bin/bash", str(BUILD_SCRIPT), "--node"],
        stdout=subprocess.PIPE,
        stderr=None if stream else subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise NodeError(f"{BUILD_SCRIPT} --node failed with exit code {proc.returncode}")
    return Path(proc.stdout.strip().splitlines()[-1])


def pause_image_archive(pause_binary: Path, destination: Path, reference: str = PAUSE_IMAGE) -> Path:
    """An OCI image archive (for `ctr images import`) holding only the static `pause` program."""
    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w") as tar:
        info = tar.gettarinfo(str(pause_binary), arcname="pause")
        info.uid = info.gid = 65535
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = 0o755
        with pause_binary.open("rb") as handle:
            tar.addfile(info, handle)
    layer = layer_tar.getvalue()
    layer_gz = gzip.compress(layer, mtime=0)
    config = {
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine),
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
    }
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return "sha256:" + digest

    config_bytes = json.dumps(config).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": blob(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": blob(layer_gz),
                "size": len(layer_gz),
            }
        ],
    }
    manifest_bytes = json.dumps(manifest).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": blob(manifest_bytes),
                "size": len(manifest_bytes),
                "platform": {"architecture": config["architecture"], "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": reference,
                    "org.opencontainers.image.ref.name": reference.rsplit(":", 1)[-1],
                },
            }
        ],
    }
    with tarfile.open(destination, "w") as archive:

        def add(path: str, data: bytes) -> None:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

        add("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add("index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            add(f"blobs/sha256/{digest}", data)
    return destination


@contextlib.contextmanager
def _host_lock(timeout: float) -> Iterator[int]:
    HOST_LOCK.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise NodeError(
                        f"another node holds {HOST_LOCK} after {timeout:.0f}s (kube-proxy's iptables "
                        "chains are host-wide: one node per machine at a time)"
                    ) from None
                time.sleep(1.0)
        yield fd
    finally:
        os.close(fd)  # releases the lock


@dataclass
class _Saved:
    sysctls: dict[str, str] = field(default_factory=dict)


class Node:
    """A ControlPlane and one node running pods, on this machine, in a temporary directory.

    >>> with Node() as node:
    ...     node.import_image(Path("jitgrant.tar"))
    ...     node.kubectl("get", "nodes")
    """

    def __init__(
        self,
        bin_dir: Path | str | None = None,
        *,
        settings: NodeSettings | None = None,
        users: Mapping[str, Sequence[str]] = DEFAULT_USERS,
        start_timeout: float = 120.0,
        extra_apiserver_args: Sequence[str] = (),
    ) -> None:
        self.settings = settings or NodeSettings()
        self._bin_dir = Path(bin_dir) if bin_dir is not None else None
        self._users = dict(users)
        self._start_timeout = start_timeout
        self._extra_apiserver_args = list(extra_apiserver_args)
        self._dir: Path | None = None
        self._plane: ControlPlane | None = None
        self._processes: list[_Process] = []
        self._saved = _Saved()
        self._lock_cm: contextlib.AbstractContextManager[int] | None = None
        self._node_ip = ""
        self._mutex = threading.Lock()

    # -- public surface ------------------------------------------------------------------------

    @property
    def plane(self) -> ControlPlane:
        if self._plane is None:
            raise NodeError("the node is not running")
        return self._plane

    @property
    def dir(self) -> Path:
        if self._dir is None:
            raise NodeError("the node is not running")
        return self._dir

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = ensure_node_prerequisites()
        return self._bin_dir

    @property
    def node_ip(self) -> str:
        return self._node_ip

    @property
    def containerd_address(self) -> Path:
        return self.dir / "containerd" / "containerd.sock"

    def ctr(self, *args: str, check: bool = True, timeout: float = 300.0) -> str:
        """Run `ctr` against this node's containerd, in the CRI plugin's namespace."""
        proc = subprocess.run(  # noqa: S603 - our own arguments
            [_tool("ctr"), "--address", str(self.containerd_address), "--namespace", K8S_NAMESPACE, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise NodeError(f"ctr {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return proc.stdout

    def import_image(self, archive: Path) -> None:
        """Import an image archive (OCI or docker-archive) so pods can run it without a registry."""
        self.ctr("images", "import", "--no-unpack", str(archive))

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 120.0, stdin: str | None = None
    ) -> str:
        proc = subprocess.run(  # noqa: S603 - our own binary
            [str(self.plane.binary("kubectl")), "--kubeconfig", str(self.plane.kubeconfig_path()), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            input=stdin,
        )
        if check and proc.returncode != 0:
            raise NodeError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}"
            )
        return proc.stdout

    def logs(self) -> dict[str, str]:
        tails = {proc.name: proc.log_tail() for proc in self._processes}
        if self._plane is not None:
            tails.update(self._plane.logs())
        return tails

    def process(self, name: str) -> _Process:
        for proc in [*self._processes, *(self._plane._processes if self._plane else [])]:
            if proc.name == name:
                return proc
        raise KeyError(f"no process {name!r}")

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> Node:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        with self._mutex:
            if self._dir is not None:
                raise NodeError("already started")
            bin_dir = self.bin_dir
            for binary in NODE_BINARIES:
                if not (bin_dir / binary).is_file():
                    raise NodeError(f"{bin_dir / binary} missing: run tests/kube/build.sh --node")
            self._lock_cm = _host_lock(self.settings.lock_timeout)
            self._lock_cm.__enter__()
            self._dir = Path(tempfile.mkdtemp(prefix="jitgrant-node-"))
        try:
            self._node_ip = self.settings.node_ip or default_node_ip()
            self._set_sysctls()
            self._prepare()
            self._make_cgroup_root()
            self._start_plane()
            self._start_containerd()
            self.import_image(pause_image_archive(bin_dir / "pause", self.dir / "pause.tar"))
            self._start_kubelet()
            self._start_kube_proxy()
            self._start_scheduler()
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """Tear everything down; safe to call on a half-started node and more than once."""
        with self._mutex:
            if self._dir is None:
                return
            with contextlib.suppress(Exception):
                self._delete_pods()
            for proc in reversed(self._processes):
                proc.stop(timeout)
            self._processes_cleanup()
            self._processes.clear()
            if self._plane is not None:
                self._plane.stop(timeout)
                self._plane = None
            self._network_cleanup()
            self._restore_sysctls()
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            if self._lock_cm is not None:
                self._lock_cm.__exit__(None, None, None)
                self._lock_cm = None

    # -- start-up steps ------------------------------------------------------------------------

    def _set_sysctls(self) -> None:
        for key in SYSCTLS:
            path = Path("/proc/sys") / key
            if not path.exists():
                continue
            self._saved.sysctls[key] = path.read_text().strip()
            path.write_text("1\n")

    def _restore_sysctls(self) -> None:
        for key, value in self._saved.sysctls.items():
            with contextlib.suppress(OSError):
                (Path("/proc/sys") / key).write_text(value + "\n")
        self._saved.sysctls.clear()

    def _prepare(self) -> None:
        root = self.dir
        for sub in ("containerd", "kubelet", "cni/net.d", "cni/ipam", "pki", "logs", "opt"):
            (root / sub).mkdir(parents=True, mode=0o700)
        # The API server's client certificate for the kubelet (logs, exec): issued by a CA only
        # this kubelet trusts, so nothing but this API server can call it.
        pki = root / "pki"
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = name("jitgrant-kubelet-client-ca")
        ca = certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
        client_key = ec.generate_private_key(ec.SECP256R1())
        client = certificate(
            name("kube-apiserver-kubelet-client", "system:masters"),
            client_key,
            ca_name,
            ca_key,
            ca=False,
            usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
        )
        (pki / "kubelet-client-ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        (pki / "apiserver-kubelet-client.crt").write_bytes(client.public_bytes(serialization.Encoding.PEM))
        (pki / "apiserver-kubelet-client.key").write_bytes(pem_key(client_key))
        os.chmod(pki / "apiserver-kubelet-client.key", 0o600)

    def _make_cgroup_root(self) -> None:
        """The kubelet's cgroupRoot (pods go under it, teardown removes it) in every v1 hierarchy."""
        for controller_dir in Path("/sys/fs/cgroup").iterdir():
            if controller_dir.name == "unified" or not (controller_dir / "cgroup.procs").exists():
                continue
            base = controller_dir / self.settings.node_name
            base.mkdir(exist_ok=True)
            for inherited in ("cpuset.cpus", "cpuset.mems"):  # an empty cpuset admits no task
                if (controller_dir / inherited).exists():
                    (base / inherited).write_text((controller_dir / inherited).read_text())

    def _start_plane(self) -> None:
        pki = self.dir / "pki"
        node_user = f"system:node:{self.settings.node_name}"
        users: dict[str, Sequence[str]] = {
            **self._users,
            node_user: ("system:nodes",),
            "system:kube-proxy": (),
            "system:kube-scheduler": (),
        }
        self._plane = ControlPlane(
            self.bin_dir,
            users=users,
            start_timeout=self._start_timeout,
            extra_apiserver_args=[
                # Pods reach the API server through the `kubernetes` Service: its endpoint must be
                # an address their packets can be DNATed to (not 127.0.0.1).
                "--bind-address=0.0.0.0",
                f"--advertise-address={self._node_ip}",
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                *self._extra_apiserver_args,
            ],
        )
        self._plane.start()

    def _launch(self, name_: str, argv: list[str]) -> _Process:
        proc = _Process(name_, argv, self.dir / "logs" / f"{name_}.log")
        self._processes.append(proc)
        proc.start(self.dir)
        return proc

    def _wait(self, proc: _Process, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            code = proc.exited()
            if code is not None:
                raise NodeError(f"{proc.name} exited with {code} during start-up:\n{proc.log_tail(40)}")
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(0.2)
        raise NodeError(f"{what} not after {self._start_timeout:.0f}s:\n{proc.log_tail(40)}")

    def _start_containerd(self) -> None:
        root = self.dir / "containerd"
        config = f"""version = 2
root = "{root / "root"}"
state = "{root / "state"}"
[grpc]
  address = "{self.containerd_address}"
[ttrpc]
  address = "{root / "containerd.sock.ttrpc"}"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{self.dir / "opt"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # root without CAP_SYS_RESOURCE: runc fails to write oom_score_adj otherwise
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{self.dir / "cni" / "net.d"}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
"""
        (root / "config.toml").write_text(config)
        conflist = {
            "cniVersion": "0.4.0",
            "name": self.settings.cni_network,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.settings.bridge,
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.settings.pod_subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.dir / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (self.dir / "cni" / "net.d" / "10-jitgrant.conflist").write_text(json.dumps(conflist, indent=2))
        proc = self._launch("containerd", ["containerd", "--config", str(root / "config.toml")])
        self._wait(proc, "containerd answering", lambda: self.ctr("version", timeout=5) != "")

    def _start_kubelet(self) -> None:
        kdir = self.dir / "kubelet"
        node_user = f"system:node:{self.settings.node_name}"
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,
            "failSwapOn": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.settings.node_name}",
            "containerRuntimeEndpoint": f"unix://{self.containerd_address}",
            "address": self._node_ip,
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.dir / "pki" / "kubelet-client-ca.crt")},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "resolvConf": "/etc/resolv.conf",
            "serializeImagePulls": False,
            "localStorageCapacityIsolation": False,
            "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "maxPods": 50,
            "podPidsLimit": -1,
            "syncFrequency": "10s",
            "fileCheckFrequency": "10s",
        }
        (kdir / "config.json").write_text(json.dumps(config, indent=2))
        kubelet_kubeconfig = self.plane.kubeconfig_path(node_user)
        proc = self._launch(
            "kubelet",
            [
                str(self.bin_dir / "kubelet"),
                f"--config={kdir / 'config.json'}",
                f"--kubeconfig={kubelet_kubeconfig}",
                f"--root-dir={kdir / 'root'}",
                f"--cert-dir={kdir / 'pki'}",
                f"--hostname-override={self.settings.node_name}",
                f"--node-ip={self._node_ip}",
                "--v=1",
            ],
        )
        self._wait(proc, f"node {self.settings.node_name} Ready", self._node_ready)

    def _node_ready(self) -> bool:
        out = self.kubectl(
            "get",
            "node",
            self.settings.node_name,
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
            check=False,
            timeout=10,
        )
        return out.strip() == "True"

    def _start_kube_proxy(self) -> None:
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(self.plane.kubeconfig_path("system:kube-proxy"))},
            "hostnameOverride": self.settings.node_name,
            "clusterCIDR": self.settings.pod_subnet,
            "bindAddress": self._node_ip,
            "healthzBindAddress": f"127.0.0.1:{free_port()}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            # Leave the host's conntrack table sizes alone (not writable in a container).
            "conntrack": {"maxPerCore": 0, "min": 0},
        }
        path = self.dir / "kube-proxy.json"
        path.write_text(json.dumps(config, indent=2))
        self._launch("kube-proxy", [str(self.bin_dir / "kube-proxy"), f"--config={path}", "--v=1"])

    def _start_scheduler(self) -> None:
        kubeconfig = self.plane.kubeconfig_path("system:kube-scheduler")
        proc = self._launch(
            "kube-scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                f"--kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--cert-dir={self.dir / 'scheduler-certs'}",
                "--leader-elect=false",
            ],
        )
        # Ready when it answers /healthz (it schedules as soon as its informers synced).
        port = next(a.split("=", 1)[1] for a in proc.argv if a.startswith("--secure-port="))
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

        def healthy() -> bool:
            import urllib.request

            with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=2, context=context) as r:
                return bool(r.status == 200)

        self._wait(proc, "kube-scheduler healthy", healthy)

    # -- teardown ------------------------------------------------------------------------------

    def _delete_pods(self) -> None:
        """Let the kubelet stop every pod (CNI DEL releases addresses, rules and network namespaces)."""
        if self._plane is None or not any(
            p.name == "kubelet" and p.exited() is None for p in self._processes
        ):
            return
        self.kubectl("cordon", self.settings.node_name, check=False, timeout=20)
        self.kubectl(
            "delete",
            "pods",
            "--all",
            "--all-namespaces",
            "--grace-period=0",
            "--force",
            "--wait=false",
            check=False,
            timeout=30,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            tasks = self.ctr("tasks", "ls", check=False, timeout=10).splitlines()[1:]
            if not any("RUNNING" in task for task in tasks):
                return
            time.sleep(0.5)

    def _processes_cleanup(self) -> None:
        """Kill the containerd shims this node started (they outlive containerd by design)."""
        if self._dir is None:
            return
        marker = str(self.containerd_address).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"containerd-shim" in cmdline and marker in cmdline:
                with contextlib.suppress(OSError):
                    os.kill(int(entry.name), signal.SIGKILL)
        # What they ran (pause, the operator, agents) was in the shim's cgroups: kill by cgroup.
        for controller in ("pids", "memory", "cpu", "freezer"):
            base = Path("/sys/fs/cgroup") / controller / self.settings.node_name
            if base.is_dir():
                for procs in base.rglob("cgroup.procs"):
                    for pid in procs.read_text().split():
                        with contextlib.suppress(OSError):
                            os.kill(int(pid), signal.SIGKILL)
                break
        time.sleep(0.5)
        for controller_dir in Path("/sys/fs/cgroup").iterdir():
            base = controller_dir / self.settings.node_name
            if base.is_dir():
                for sub in sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                    with contextlib.suppress(OSError):
                        sub.rmdir()
                with contextlib.suppress(OSError):
                    base.rmdir()
        # Overlay mounts of the snapshotter and the kubelet's volume mounts live under our directory.
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(self._dir))), key=len, reverse=True):
            _quiet([_tool("umount"), "-l", mount])

    def _network_cleanup(self) -> None:
        if self._bin_dir is not None:
            subprocess.run(  # noqa: S603 - our own binary
                [str(self._bin_dir / "kube-proxy"), "--cleanup"], check=False, capture_output=True, timeout=60
            )
        _quiet([shutil.which("ip") or "/usr/sbin/ip", "link", "del", self.settings.bridge])
        # The bridge plugin's masquerade chains of sandboxes not torn down in time (CNI DEL never
        # ran): found by the network name in their comment.
        _remove_cni_chains(self.settings.cni_network)
        # The kubelet's own chains (kube-proxy --cleanup leaves them): upstream names, hence the lock.
        for tool in ("iptables", "ip6tables"):
            for table, chain, parents in KUBELET_CHAINS:
                for parent in parents:
                    _quiet([_tool(tool), "-t", table, "-D", parent, "-j", chain])
                _quiet([_tool(tool), "-t", table, "-F", chain])
                _quiet([_tool(tool), "-t", table, "-X", chain])


def _remove_cni_chains(network: str) -> None:
    """Delete the nat rules and CNI-* chains whose comment names this CNI network."""
    saved = subprocess.run(  # noqa: S603
        [_tool("iptables-save"), "-t", "nat"], capture_output=True, text=True, check=False, timeout=30
    ).stdout
    marker = f'name: \\"{network}\\"'  # as iptables-save quotes the comment
    chains: set[str] = set()
    for line in saved.splitlines():
        if line.startswith("-A POSTROUTING ") and marker in line:
            rule = shlex.split(line)[2:]
            _quiet([_tool("iptables"), "-t", "nat", "-D", "POSTROUTING", *rule])
            if "-j" in rule:
                chains.add(rule[rule.index("-j") + 1])
    for chain in chains:
        if chain.startswith("CNI-"):
            _quiet([_tool("iptables"), "-t", "nat", "-F", chain])
            _quiet([_tool("iptables"), "-t", "nat", "-X", chain])


def _tool(name_: str) -> str:
    return shutil.which(name_) or f"/usr/sbin/{name_}"


def _quiet(argv: list[str]) -> None:
    subprocess.run(argv, check=False, capture_output=True, timeout=30)  # noqa: S603


def main(argv: Sequence[str] | None = None) -> int:
    """Start a node for a person, print how to reach it, run until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m jitgrant_testing.node", description="Run a real one-node cluster on this machine."
    )
    parser.add_argument("--image", action="append", default=[], help="an image archive to import")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    started = time.monotonic()
    node = Node()
    try:
        node.start()
    except NodeUnavailable as err:
        print(f"node: cannot run here: {err}", file=sys.stderr)
        return 3
    except ControlPlaneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        for image in args.image:
            node.import_image(Path(image))
        print(f"node {node.settings.node_name} Ready in {time.monotonic() - started:.1f}s")
        print("export KUBECONFIG=" + str(node.plane.kubeconfig_path("admin")))
        print(f"{node.plane.binary('kubectl')} get pods -A\nCtrl-C stops everything.", flush=True)
        while not stopping.wait(1.0):
            pass
        return 0
    finally:
        node.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
