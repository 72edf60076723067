"""How to reach one Kubernetes API server: where it is, which CA to trust, and who to be.

A `ClusterConnection` is a value: it holds no open sockets and no token, only a token provider that
hands out a current bearer token on demand. `to_api_client()` builds the official (synchronous)
Kubernetes client from it; the operator calls that client through `asyncio.to_thread`, and the
client asks the provider for a token before every request, so a long-lived client never sends an
expired one.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from jitgrant.clusters.gate import ClusterGate

IN_CLUSTER_NAME = "in-cluster"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# The kubelet rotates projected ServiceAccount tokens well before they expire; re-reading the file
# once a minute is what client-go does.
SERVICE_ACCOUNT_TOKEN_REREAD = timedelta(minutes=1)


@dataclass(frozen=True)
class BearerToken:
    """A bearer token and when it stops working (None: not known, e.g. a static dev token)."""

    value: str = field(repr=False)
    expires_at: datetime | None = None


class TokenProvider(Protocol):
    """Returns a token valid for at least a little while longer. Must be safe to call from threads."""

    def __call__(self) -> BearerToken: ...


@dataclass(frozen=True)
class StaticToken:
    """A token that never changes: a dev cluster's admin token or a kubeconfig's `token:`."""

    token: BearerToken = field(repr=False)

    def __call__(self) -> BearerToken:
        return self.token


@dataclass(frozen=True)
class ClientCertificate:
    """Files holding a client certificate and key (kind and kubeadm kubeconfigs authenticate so)."""

    cert_file: str
    key_file: str


@dataclass(frozen=True)
class ClusterConnection:
    """Where a cluster is and how to authenticate to it.

    `ca_pem` None means "no private CA": plain http (a local dev cluster) or a server whose
    certificate the system trust store verifies. TLS verification is never switched off.
    """

    name: str
    server: str
    ca_pem: bytes | None = field(default=None, repr=False)
    token_provider: TokenProvider | None = field(default=None, repr=False, compare=False)
    client_certificate: ClientCertificate | None = None
    # A target cluster's threads, budget and circuit breaker (clusters/gate.py); every call a
    # `ClusterApi` built from this connection makes goes through it. None: the operator's own pool.
    gate: ClusterGate | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        scheme = urlsplit(self.server).scheme
        if scheme not in ("http", "https") or not urlsplit(self.server).netloc:
            raise ValueError(f"cluster {self.name}: server {self.server!r} is not an http(s) URL")
        if scheme == "http" and self.ca_pem is not None:
            raise ValueError(f"cluster {self.name}: a CA makes no sense for plain http server {self.server}")
        if self.token_provider is None and self.client_certificate is None:
            raise ValueError(f"cluster {self.name}: needs a token provider or a client certificate")

    def token(self) -> BearerToken | None:
        """The current bearer token (None when the connection uses a client certificate)."""
        return self.token_provider() if self.token_provider is not None else None

    def to_configuration(self) -> k8s_client.Configuration:
        configuration = k8s_client.Configuration()
        configuration.host = self.server.rstrip("/")
        configuration.verify_ssl = True
        # No retries inside urllib3 (by default 3, each waiting out the read timeout: a target that
        # accepts connections and never answers held a grant 'Issuing' for 77 s per attempt, found
        # by make chaos): a failed call fails at once, and the scheduler retries with its backoff.
        configuration.retries = 0
        if self.ca_pem is not None:
            configuration.ssl_ca_cert = _ca_file(self.ca_pem)
        if self.client_certificate is not None:
            configuration.cert_file = self.client_certificate.cert_file
            configuration.key_file = self.client_certificate.key_file
        provider = self.token_provider
        if provider is not None:

            def refresh(target: k8s_client.Configuration) -> None:
                # Called by the client before every request; providers cache, so this is cheap.
                target.api_key["BearerToken"] = "Bearer " + provider().value

            refresh(configuration)
            configuration.refresh_api_key_hook = refresh
        return configuration

    def to_api_client(self) -> k8s_client.ApiClient:
        """A new synchronous Kubernetes client for this cluster; close it (or use `with`) when done."""
        return k8s_client.ApiClient(configuration=self.to_configuration())


class ServiceAccountTokenFile:
    """The operator's own projected ServiceAccount token, re-read from disk once a minute."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._token: BearerToken | None = None
        self._read_at: datetime | None = None

    def __call__(self) -> BearerToken:
        with self._lock:
            now = self._clock()
            stale = self._read_at is None or now - self._read_at >= SERVICE_ACCOUNT_TOKEN_REREAD
            if self._token is None or stale:
                value = self._path.read_text().strip()
                if not value:
                    raise RuntimeError(f"ServiceAccount token file {self._path} is empty")
                self._token = BearerToken(value=value, expires_at=None)
                self._read_at = now
            return self._token


class KubeconfigToken:
    """The token a loaded kubeconfig user yields, refreshed through the loader (exec plugins, OIDC)."""

    def __init__(self, configuration: k8s_client.Configuration) -> None:
        self._configuration = configuration
        self._lock = threading.Lock()

    def __call__(self) -> BearerToken:
        with self._lock:
            hook = self._configuration.refresh_api_key_hook
            if hook is not None:
                hook(self._configuration)
            raw = str(
                self._configuration.api_key.get("BearerToken")
                or self._configuration.api_key.get("authorization")
                or ""
            )
        scheme, _, value = raw.partition(" ")
        token = value if scheme.lower() == "bearer" and value else raw
        if not token:
            raise RuntimeError("the kubeconfig user has no bearer token")
        return BearerToken(value=token, expires_at=None)


def in_cluster_connection(
    *, environ: Mapping[str, str] | None = None, service_account_dir: Path = SERVICE_ACCOUNT_DIR
) -> ClusterConnection:
    """The cluster the operator runs in, from the Pod's environment and its ServiceAccount files."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise RuntimeError("not running in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set")
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return ClusterConnection(
        name=IN_CLUSTER_NAME,
        server=f"https://{netloc}",
        ca_pem=(service_account_dir / "ca.crt").read_bytes(),
        token_provider=ServiceAccountTokenFile(service_account_dir / "token"),
    )


def kubeconfig_connection(
    *,
    config_file: str | None = None,
    config_dict: Mapping[str, Any] | None = None,
    context: str | None = None,
    name: str = IN_CLUSTER_NAME,
) -> ClusterConnection:
    """The cluster a kubeconfig points at (the operator run outside the cluster, or in dev)."""
    configuration = k8s_client.Configuration()
    if config_dict is not None:
        k8s_config.load_kube_config_from_dict(
            config_dict=dict(config_dict), context=context, client_configuration=configuration
        )
    else:
        k8s_config.load_kube_config(
            config_file=config_file, context=context, client_configuration=configuration
        )
    if not configuration.verify_ssl:
        raise ValueError(
            "the kubeconfig sets insecure-skip-tls-verify; "
            "jitgrant does not talk to clusters it cannot verify"
        )
    server = str(configuration.host)
    ca_pem = Path(configuration.ssl_ca_cert).read_bytes() if configuration.ssl_ca_cert else None
    has_token = bool(configuration.api_key.get("BearerToken") or configuration.api_key.get("authorization"))
    certificate = (
        ClientCertificate(cert_file=configuration.cert_file, key_file=configuration.key_file)
        if configuration.cert_file and configuration.key_file
        else None
    )
    return ClusterConnection(
        name=name,
        server=server,
        ca_pem=ca_pem if server.startswith("https://") else None,
        token_provider=KubeconfigToken(configuration) if has_token else None,
        client_certificate=certificate,
    )


def own_cluster_connection(*, kubeconfig: str | None = None, context: str | None = None) -> ClusterConnection:
    """The operator's own cluster: in-cluster config inside a Pod, else the kubeconfig (or $KUBECONFIG)."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster_connection()
    return kubeconfig_connection(config_file=kubeconfig, context=context)


# The Kubernetes client reads CAs only from files. A CA certificate is public, so writing it is
# harmless; one file per distinct CA, in a private directory removed at exit.
_ca_lock = threading.Lock()
_ca_dir: Path | None = None


def _ca_file(ca_pem: bytes) -> str:
    global _ca_dir
    with _ca_lock:
        if _ca_dir is None:
            _ca_dir = Path(tempfile.mkdtemp(prefix="jitgrant-ca-"))
            atexit.register(shutil.rmtree, _ca_dir, True)
        path = _ca_dir / f"{hashlib.sha256(ca_pem).hexdigest()}.pem"
        if not path.exists():
            temporary = path.with_suffix(".tmp")
            temporary.write_bytes(ca_pem)
            temporary.replace(path)
        return str(path)
