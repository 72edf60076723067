"""Credentials from a kubeconfig or a pod, read without importing the Kubernetes client.

Importing `kubernetes` costs a read-only CLI command about half its time, so the common kubeconfigs
are read here: a server with a CA (file or data, or insecure-skip-tls-verify), and a user with a
token, a token file, a client certificate (file or data) or an `exec` plugin that returns a token.
Anything else (auth-provider, basic auth, an exec plugin that returns a certificate) is handed to the
official loader, so what worked before still works. Files named relative to a kubeconfig are
resolved from its directory, and several files are merged as kubectl merges them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class Unsupported(Exception):
    """This kubeconfig needs the official loader (the message says which part)."""


class KubeconfigError(Exception):
    """The kubeconfig cannot be used; the message names the file and the part."""


@dataclass(frozen=True)
class Credentials:
    host: str
    ca_file: str | None
    ca_data: str | None
    verify: bool
    cert_file: str | None
    key_file: str | None
    cert_data: bytes | None
    key_data: bytes | None
    authorization: Callable[[], str | None]
    namespace: str | None
    impersonate: tuple[tuple[str, str], ...] = ()


def merged(paths: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """kubectl's merge (the first file to name an entry or current-context wins), and for each
    entry name the directory its relative file paths are resolved from."""
    result: dict[str, Any] = {"clusters": [], "users": [], "contexts": [], "current-context": None}
    origin: dict[str, str] = {}
    for path in paths:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise KubeconfigError(f"cannot read kubeconfig {path}: {exc}") from exc
        if not isinstance(loaded, Mapping):
            raise KubeconfigError(f"kubeconfig {path} is not a kubeconfig (a YAML mapping)")
        for key in ("clusters", "users", "contexts"):
            known = {entry.get("name") for entry in result[key]}
            for entry in loaded.get(key) or []:
                if isinstance(entry, Mapping) and entry.get("name") not in known:
                    result[key].append(entry)
                    origin[f"{key}/{entry.get('name')}"] = str(Path(path).parent)
        if not result["current-context"] and loaded.get("current-context"):
            result["current-context"] = loaded["current-context"]
    return result, origin


def _named(config: Mapping[str, Any], key: str, name: object) -> Mapping[str, Any]:
    inner = key[:-1]
    for entry in config.get(key) or []:
        if entry.get("name") == name:
            return entry.get(inner) or {}
    raise KubeconfigError(f"the kubeconfig has no {inner} named {name!r}")


def _data(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=False)
    except ValueError as exc:
        raise KubeconfigError(f"{what} is not base64") from exc


def from_kubeconfig(paths: Sequence[str], *, context: str | None = None) -> Credentials:
    config, origin = merged(paths)
    name = context or config.get("current-context")
    if not name:
        raise KubeconfigError(f"{os.pathsep.join(paths)} sets no current-context; pass a context")
    ctx = _named(config, "contexts", name)
    cluster = _named(config, "clusters", ctx.get("cluster"))
    user = _named(config, "users", ctx.get("user"))
    for unsupported in ("auth-provider", "username", "password"):
        if user.get(unsupported):
            raise Unsupported(unsupported)

    def resolved(value: object, key: str, entry: object) -> str | None:
        if not value:
            return None
        base = Path(origin.get(f"{key}/{entry}", "."))
        return str(Path(str(value)) if Path(str(value)).is_absolute() else base / str(value))

    ca_data = cluster.get("certificate-authority-data")
    cert_data, key_data = user.get("client-certificate-data"), user.get("client-key-data")
    token_file = resolved(user.get("tokenFile"), "users", ctx.get("user"))
    authorization: Callable[[], str | None]
    if user.get("token"):
        token = str(user["token"])
        authorization = lambda: f"Bearer {token}"  # noqa: E731
    elif token_file:
        authorization = _file_token(token_file)
    elif user.get("exec"):
        authorization = _ExecToken(user["exec"])
    else:
        authorization = lambda: None  # noqa: E731
    impersonate: list[tuple[str, str]] = []
    if user.get("as"):
        impersonate.append(("Impersonate-User", str(user["as"])))
        impersonate.extend(("Impersonate-Group", str(g)) for g in user.get("as-groups") or ())
        if user.get("as-uid"):
            impersonate.append(("Impersonate-Uid", str(user["as-uid"])))
    server = str(cluster.get("server") or "")
    if not server:
        raise KubeconfigError(f"cluster {ctx.get('cluster')!r} has no server")
    return Credentials(
        host=server.rstrip("/"),
        ca_file=resolved(cluster.get("certificate-authority"), "clusters", ctx.get("cluster")),
        ca_data=_data(ca_data, "certificate-authority-data").decode() if ca_data else None,
        verify=not cluster.get("insecure-skip-tls-verify"),
        cert_file=resolved(user.get("client-certificate"), "users", ctx.get("user")),
        key_file=resolved(user.get("client-key"), "users", ctx.get("user")),
        cert_data=_data(cert_data, "client-certificate-data") if cert_data else None,
        key_data=_data(key_data, "client-key-data") if key_data else None,
        authorization=authorization,
        namespace=(ctx.get("namespace") or None),
        impersonate=tuple(impersonate),
    )


def in_cluster(directory: Path = SERVICE_ACCOUNT_DIR) -> Credentials:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise KubeconfigError("KUBERNETES_SERVICE_HOST/PORT are not set: not running in a pod")
    if not (directory / "token").exists():
        raise KubeconfigError(f"no ServiceAccount token at {directory / 'token'}")
    namespace = None
    with contextlib.suppress(OSError):
        namespace = (directory / "namespace").read_text().strip() or None
    return Credentials(
        host=f"https://{f'[{host}]' if ':' in host else host}:{port}",
        ca_file=str(directory / "ca.crt"),
        ca_data=None,
        verify=True,
        cert_file=None,
        key_file=None,
        cert_data=None,
        key_data=None,
        authorization=_file_token(str(directory / "token")),  # rotated by the kubelet: read each time
        namespace=namespace,
    )


def _file_token(path: str) -> Callable[[], str | None]:
    def read() -> str | None:
        try:
            token = Path(path).read_text().strip()
        except OSError:
            return None
        return f"Bearer {token}" if token else None

    return read


class _ExecToken:
    """A client-go credential plugin's token, run again when the one it returned expires."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        self.token: str | None = None
        self.expires: float | None = None

    def __call__(self) -> str | None:
        if self.token is None or (self.expires is not None and time.time() > self.expires - 10):
            self._run()
        return f"Bearer {self.token}" if self.token else None

    def _run(self) -> None:
        env = dict(os.environ)
        env.update({str(e["name"]): str(e["value"]) for e in self.spec.get("env") or ()})
        api_version = str(self.spec.get("apiVersion") or "client.authentication.k8s.io/v1")
        info = {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
        env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
        command = [str(self.spec.get("command")), *map(str, self.spec.get("args") or ())]
        try:
            # The kubeconfig's owner names the plugin, as for kubectl: it runs as the caller.
            done = subprocess.run(  # noqa: S603
                command, env=env, capture_output=True, text=True, check=True, timeout=60
            )
            status = json.loads(done.stdout).get("status") or {}
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            raise KubeconfigError(f"the kubeconfig's exec plugin {command[0]} failed: {exc}") from exc
        if not status.get("token"):
            raise KubeconfigError(f"the exec plugin {command[0]} returned no token")
        self.token = str(status["token"])
        stamp = status.get("expirationTimestamp")
        self.expires = (
            datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp() if stamp else None
        )
