"""A real Kubernetes control plane on 127.0.0.1, started the way envtest starts one.

etcd, kube-apiserver and kube-controller-manager are upstream binaries built from the Go modules
pinned in `tests/kube/go.mod` (`tests/kube/build.sh` builds them once and caches them per version).
Everything lives in one temporary directory: generated CA and serving certificates, the
ServiceAccount signing key, a static token file with random tokens for the test identities, the
audit policy and log, etcd's data and one kubeconfig per identity. Given an `AuditWebhook`, the API
server also posts its audit Events to that URL (`--audit-webhook-config-file`) besides writing the
log file. `stop()` terminates the processes (then kills them) and removes the directory, so nothing
outlives the object.

This module is independent of the operator: it imports only the standard library and
`cryptography`, so it can start a cluster for anything (`python -m jitgrant_testing.controlplane`).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from jitgrant_testing.tls import certificate, name, pem_key

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "tests" / "kube" / "build.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")

# Test identities (static token file): name -> groups. Only `admin` holds any permission at
# start; the others are authenticated and nothing more until a test binds them.
DEFAULT_USERS: Mapping[str, tuple[str, ...]] = {
    "admin": ("system:masters",),
    "agent": ("jitgrant:agents",),
    "approver": ("jitgrant:approvers",),
    "mallory": (),
}
# kube-controller-manager's own identity; the bootstrap RBAC policy grants this user name
# what the controller manager needs (and, with --use-service-account-credentials, to mint
# per-controller ServiceAccount tokens).
KCM_USER = "system:kube-controller-manager"
SERVICE_CIDR = "10.0.0.0/24"
CERT_VALIDITY = dt.timedelta(days=2)  # a control plane lives for one test session
SERVICE_IP = "10.0.0.1"  # first address of SERVICE_CIDR: the `kubernetes` Service

# RequestResponse for what jitgrant reads and writes (RBAC and its own CRDs), Metadata for the rest;
# RequestReceived is omitted so each request is one ResponseComplete event.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {
            "level": "RequestResponse",
            "resources": [{"group": "rbac.authorization.k8s.io"}, {"group": "jitgrant.dev"}],
        },
        {"level": "Metadata"},
    ],
}


@dataclass(frozen=True)
class AuditWebhook:
    """Where kube-apiserver's audit webhook backend posts its EventLists, and how it proves itself.

    The API server is given a kubeconfig naming `url` (HTTPS, verified against `ca_file`) and a user
    holding `token`; it posts in batch mode, a batch at most `batch_max_wait` seconds after its first
    Event (upstream waits 30 s), and retries a failed post after `initial_backoff` seconds (upstream
    10 s), growing 1.5x, five tries in all, before it logs the batch as lost.
    """

    url: str
    token: str
    ca_file: Path
    batch_max_wait: float = 1.0
    initial_backoff: float = 1.0


class ControlPlaneError(RuntimeError):
    """The binaries could not be built or a component did not come up."""


class BuildUnavailable(ControlPlaneError):
    """No Go toolchain: the binaries cannot be built here."""


def ensure_binaries(*, stream: bool = True) -> Path:
    """Build the binaries (or reuse the cached ones) with tests/kube/build.sh; return their directory.

    `JITGRANT_KUBE_BIN` names a directory of prebuilt binaries and skips the build.
    """
    prebuilt = os.environ.get("JITGRANT_KUBE_BIN")
    if prebuilt:
        return Path(prebuilt)
    if shutil.which("go") is None:
        raise BuildUnavailable("no Go toolchain on PATH (needed to build kube-apiserver from source)")
    # Progress (stderr) goes to the terminal when streaming; stdout's last line is the directory.
    proc = subprocess.run(  # noqa: S603 - our own script
        ["/bin/bash", str(BUILD_SCRIPT)],
        stdout=subprocess.PIPE,
        stderr=None if stream else subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        detail = "" if stream else f": {proc.stderr.strip()[-2000:]}"
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed with exit code {proc.returncode}{detail}")
    return Path(proc.stdout.strip().splitlines()[-1])


def cached_binaries() -> Path | None:
    """The directory holding binaries `make kube` already built (or `JITGRANT_KUBE_BIN`), else None.

    Never builds: for callers that must not start a compile of tens of minutes (bench/grants.py).
    It only checks the executables exist in the cache directory of the version pinned in
    tests/kube/go.mod; whether they are stale (build.sh's stamp) is build.sh's business.
    """
    prebuilt = os.environ.get("JITGRANT_KUBE_BIN")
    if prebuilt:
        directory = Path(prebuilt)
    else:
        version = ""
        for line in (BUILD_SCRIPT.parent / "go.mod").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "k8s.io/kubernetes":
                version = fields[1]
                break
        if not version:
            return None
        cache = os.environ.get("JITGRANT_KUBE_CACHE") or str(Path.home() / ".cache" / "jitgrant" / "kube")
        directory = Path(cache) / version
    if all(os.access(directory / binary, os.X_OK) for binary in BINARIES):
        return directory
    return None


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _set_pdeathsig() -> None:
    # Linux: the child gets SIGKILL when the thread that started it dies, so even a parent killed
    # with SIGKILL leaves no etcd or apiserver behind.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class _Process:
    """One component: its command line, its log file and the running process."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self, cwd: Path) -> None:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(  # noqa: S603 - our own binaries and flags
                self.argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_set_pdeathsig,  # only calls prctl: safe before exec
            )

    def exited(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds; always reaps the process."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.popen = None


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on 127.0.0.1 in a temporary directory.

    >>> with ControlPlane() as cp:
    ...     cp.kubeconfig_path("admin"), cp.token("agent"), cp.audit_log_path
    """

    def __init__(
        self,
        bin_dir: Path | str | None = None,
        *,
        users: Mapping[str, Sequence[str]] = DEFAULT_USERS,
        controller_manager: bool = True,
        start_timeout: float = 120.0,
        extra_apiserver_args: Sequence[str] = (),
        audit_webhook: AuditWebhook | None = None,
    ) -> None:
        self._bin_dir = Path(bin_dir) if bin_dir is not None else None
        self._users = {name: tuple(groups) for name, groups in users.items()}
        self._controller_manager = controller_manager
        self._start_timeout = start_timeout
        self._extra_apiserver_args = list(extra_apiserver_args)
        self._audit_webhook = audit_webhook
        self._tokens: dict[str, str] = {}
        self._processes: list[_Process] = []
        self._dir: Path | None = None
        self._port = 0
        self._etcd_url = ""
        self._lock = threading.Lock()

    # -- public surface ------------------------------------------------------------------------

    @property
    def dir(self) -> Path:
        if self._dir is None:
            raise ControlPlaneError("the control plane is not running")
        return self._dir

    @property
    def server(self) -> str:
        """The API server's URL, e.g. https://127.0.0.1:41269."""
        self.dir  # noqa: B018 - raises when not running
        return f"https://127.0.0.1:{self._port}"

    @property
    def ca_path(self) -> Path:
        return self.dir / "pki" / "ca.crt"

    @property
    def audit_log_path(self) -> Path:
        return self.dir / "audit" / "audit.log"

    def pids(self) -> dict[str, int]:
        """The running components' process ids by name (etcd, kube-apiserver, ...): for metering."""
        return {proc.name: proc.popen.pid for proc in self._processes if proc.popen is not None}

    @property
    def audit_webhook_config_path(self) -> Path:
        """The kubeconfig given to `--audit-webhook-config-file` (written only with an AuditWebhook)."""
        return self.dir / "audit" / "webhook.kubeconfig"

    @property
    def users(self) -> Mapping[str, tuple[str, ...]]:
        return dict(self._users)

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = ensure_binaries()
        return self._bin_dir

    def binary(self, name: str) -> Path:
        """Path of one of the built binaries (`kubectl` is useful to tests and people)."""
        return self.bin_dir / name

    def token(self, user: str) -> str:
        try:
            return self._tokens[user]
        except KeyError:
            raise KeyError(f"no such user {user!r}; known: {sorted(self._tokens)}") from None

    def kubeconfig_path(self, user: str = "admin", *, namespace: str | None = None) -> Path:
        """A kubeconfig (mode 0600) for `user`'s token, CA by path; written on first use."""
        suffix = f"-{namespace}" if namespace else ""
        path = self.dir / "kubeconfigs" / f"{user}{suffix}.kubeconfig"
        if not path.exists():
            context: dict[str, str] = {"cluster": "jitgrant-real", "user": user}
            if namespace:
                context["namespace"] = namespace
            config = {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "jitgrant-real",
                        "cluster": {"server": self.server, "certificate-authority": str(self.ca_path)},
                    }
                ],
                "users": [{"name": user, "user": {"token": self.token(user)}}],
                "contexts": [{"name": user, "context": context}],
                "current-context": user,
            }
            # JSON is YAML: every kubeconfig reader accepts it, and no yaml dependency is needed.
            _write_private(path, json.dumps(config, indent=2) + "\n")
        return path

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))

    def logs(self) -> dict[str, str]:
        """The last lines each component logged (for failure messages)."""
        return {proc.name: proc.log_tail() for proc in self._processes}

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        with self._lock:
            if self._dir is not None:
                raise ControlPlaneError("already started")
            bin_dir = self.bin_dir
            for name in BINARIES:
                if not (bin_dir / name).is_file():
                    raise ControlPlaneError(f"{bin_dir / name} missing: run tests/kube/build.sh")
            self._dir = Path(tempfile.mkdtemp(prefix="jitgrant-kube-"))
        try:
            self._prepare()
            self._start_etcd()
            self._start_apiserver()
            if self._controller_manager:
                self._start_controller_manager()
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """Stop in reverse order (controller manager, apiserver, etcd) and delete the directory."""
        with self._lock:
            for proc in reversed(self._processes):
                proc.stop(timeout)
            self._processes.clear()
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
            self._tokens.clear()

    # -- start-up steps ------------------------------------------------------------------------

    def _prepare(self) -> None:
        root = self.dir
        for sub in ("pki", "etcd", "audit", "kubeconfigs", "logs", "kcm-certs", "apiserver-certs"):
            (root / sub).mkdir(mode=0o700)
        self._port = free_port()
        pki = root / "pki"

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = name("jitgrant-test-ca")
        ca = certificate(ca_name, ca_key, ca_name, ca_key, ca=True, valid_for=CERT_VALIDITY)
        serving_key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [
            x509.DNSName(n)
            for n in (
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            )
        ]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", SERVICE_IP)]
        serving = certificate(
            name("kube-apiserver"),
            serving_key,
            ca_name,
            ca_key,
            ca=False,
            sans=sans,
            usages=[ExtendedKeyUsageOID.SERVER_AUTH],
            valid_for=CERT_VALIDITY,
        )
        _write_private(pki / "ca.crt", ca.public_bytes(serialization.Encoding.PEM).decode())
        _write_private(pki / "ca.key", pem_key(ca_key).decode())
        _write_private(pki / "apiserver.crt", serving.public_bytes(serialization.Encoding.PEM).decode())
        _write_private(pki / "apiserver.key", pem_key(serving_key).decode())
        # ServiceAccount tokens are signed with this key (apiserver's TokenRequest and the
        # controller manager's legacy token controller share it).
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_private(pki / "sa.key", pem_key(sa_key).decode())
        sa_pub = sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _write_private(pki / "sa.pub", sa_pub.decode())

        # Static token file: token,user,uid,"group1,group2".
        rows = []
        for user, groups in {**self._users, KCM_USER: ()}.items():
            self._tokens[user] = secrets.token_urlsafe(32)
            row = f"{self._tokens[user]},{user},uid-{user}"
            # No groups column at all when there are none: an empty one would mean the group "".
            rows.append(f'{row},"{",".join(groups)}"' if groups else row)
        _write_private(pki / "tokens.csv", "\n".join(rows) + "\n")
        _write_private(root / "audit" / "policy.json", json.dumps(AUDIT_POLICY, indent=2) + "\n")
        if self._audit_webhook is not None:
            hook = self._audit_webhook
            webhook_config = {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "audit",
                        "cluster": {"server": hook.url, "certificate-authority": str(hook.ca_file)},
                    }
                ],
                "users": [{"name": "kube-apiserver", "user": {"token": hook.token}}],
                "contexts": [{"name": "audit", "context": {"cluster": "audit", "user": "kube-apiserver"}}],
                "current-context": "audit",
            }
            _write_private(self.audit_webhook_config_path, json.dumps(webhook_config, indent=2) + "\n")

    def _launch(self, name: str, argv: list[str]) -> _Process:
        proc = _Process(name, argv, self.dir / "logs" / f"{name}.log")
        self._processes.append(proc)
        proc.start(self.dir)
        return proc

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self._etcd_url = f"http://127.0.0.1:{client}"
        proc = self._launch(
            "etcd",
            [
                str(self.binary("etcd")),
                "--name=default",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={self._etcd_url}",
                f"--advertise-client-urls={self._etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                # A throwaway store: skipping fsync makes start-up and writes much faster.
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._wait(proc, lambda: _http_ok(f"{self._etcd_url}/health", None, None))

    def _start_apiserver(self) -> None:
        pki = self.dir / "pki"
        proc = self._launch(
            "kube-apiserver",
            [
                str(self.binary("kube-apiserver")),
                f"--etcd-servers={self._etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self._port}",
                f"--cert-dir={self.dir / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                f"--token-auth-file={pki / 'tokens.csv'}",
                f"--service-account-issuer=https://127.0.0.1:{self._port}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--audit-policy-file={self.dir / 'audit' / 'policy.json'}",
                f"--audit-log-path={self.audit_log_path}",
                "--audit-log-mode=blocking",  # each event is on disk when the response is sent
                "--allow-privileged=true",
                "--profiling=false",
                *self._audit_webhook_args(),
                *self._extra_apiserver_args,
            ],
        )
        admin = self._tokens["admin"]
        self._wait(proc, lambda: _http_ok(f"{self.server}/readyz", self.ssl_context(), admin))

    def _audit_webhook_args(self) -> list[str]:
        hook = self._audit_webhook
        if hook is None:
            return []
        return [
            f"--audit-webhook-config-file={self.audit_webhook_config_path}",
            "--audit-webhook-mode=batch",
            f"--audit-webhook-batch-max-wait={hook.batch_max_wait:g}s",
            f"--audit-webhook-initial-backoff={hook.initial_backoff:g}s",
        ]

    def _start_controller_manager(self) -> None:
        pki = self.dir / "pki"
        kubeconfig = self.kubeconfig_path(KCM_USER)
        proc = self._launch(
            "kube-controller-manager",
            [
                str(self.binary("kube-controller-manager")),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--cert-dir={self.dir / 'kcm-certs'}",
                "--leader-elect=false",
                # All default controllers; the cloud and node-IPAM ones are off by default and
                # the node controllers simply find no nodes.
                "--controllers=*",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
            ],
        )
        # Ready when the ServiceAccount controller has made `default/default`: controllers run.
        admin = self._tokens["admin"]
        url = f"{self.server}/api/v1/namespaces/default/serviceaccounts/default"
        self._wait(proc, lambda: _http_ok(url, self.ssl_context(), admin))

    def _wait(self, proc: _Process, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            code = proc.exited()
            if code is not None:
                raise ControlPlaneError(f"{proc.name} exited with {code} during start-up:\n{proc.log_tail()}")
            if ready():
                return
            time.sleep(0.2)
        raise ControlPlaneError(f"{proc.name} not ready after {self._start_timeout:.0f}s:\n{proc.log_tail()}")


def _http_ok(url: str, context: ssl.SSLContext | None, token: str | None) -> bool:
    request = urllib.request.Request(url)  # noqa: S310 - http(s)://127.0.0.1 built here
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Start a control plane for a person, print how to reach it, run until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m jitgrant_testing.controlplane",
        description="Run etcd + kube-apiserver + kube-controller-manager (built from source) on 127.0.0.1.",
    )
    parser.add_argument(
        "--bin-dir", help="prebuilt binaries (default: build or reuse them with tests/kube/build.sh)"
    )
    parser.add_argument(
        "--no-controller-manager", action="store_true", help="start etcd and kube-apiserver only"
    )
    args = parser.parse_args(argv)

    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    try:
        plane = ControlPlane(args.bin_dir, controller_manager=not args.no_controller_manager)
        bin_dir = plane.bin_dir
        print(f"binaries: {bin_dir}", flush=True)
        plane.start()
    except ControlPlaneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        print(f"control plane ready in {time.monotonic() - started:.1f}s at {plane.server}")
        print(f"workdir (removed on exit): {plane.dir}")
        print(f"audit log: {plane.audit_log_path}")
        for user, groups in plane.users.items():
            shown = ",".join(groups) or "-"
            print(f"  {user:<9} groups={shown:<20} kubeconfig={plane.kubeconfig_path(user)}")
        print("\nexport KUBECONFIG=" + str(plane.kubeconfig_path("admin")))
        print(f"{plane.binary('kubectl')} get namespaces")
        print("\nCtrl-C stops everything and deletes the directory.", flush=True)
        while not stopping.wait(1.0):
            for proc in plane._processes:
                code = proc.exited()
                if code is not None:
                    print(f"{proc.name} exited with {code}:\n{proc.log_tail()}", file=sys.stderr)
                    return 1
        return 0
    finally:
        plane.stop()
        print("stopped; temporary directory removed", flush=True)


if __name__ == "__main__":
    sys.exit(main())
