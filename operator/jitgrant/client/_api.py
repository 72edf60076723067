"""The few Kubernetes API calls the agent side makes, over aiohttp so a watch can be cancelled at once.

Credentials come from the official client's loaders (kubeconfig with exec plugins and client
certificates, or the pod's ServiceAccount); the calls themselves are plain REST. A pass-through
connection (`with_token`) keeps the server address and CA but authenticates with the caller's own
bearer token only: the client certificate of whoever runs the MCP server is never sent, because the
API server would authenticate that first and the call would act as the server's identity.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import kubernetes.client
import kubernetes.config
from kubernetes.config.config_exception import ConfigException
from multidict import CIMultiDict

from jitgrant.client.errors import ApiRefused, ApiUnreachable, JitgrantError
from jitgrant.httpbody import BodyError, read_body
from jitgrant.models import API_GROUP, API_VERSION
from jitgrant.models.vocabulary import Reason
from jitgrant.unreachable import unreachable

IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
REQUESTS = "accessrequests"
POLICIES = "grantpolicies"
# The API server ends a watch after timeoutSeconds; the client then resumes from its resourceVersion.
WATCH_SECONDS = 290
_CONNECT_TIMEOUT = 10.0
_READ_TIMEOUT = 30.0
# The largest answer the client reads: an AccessRequest or a page of them, with room to spare.
MAX_RESPONSE_BYTES = 64 * 2**20


@dataclass
class ApiResponse:
    body: dict[str, Any]
    warnings: list[str]


@dataclass(frozen=True)
class Tls:
    ca_file: str | None = None
    verify: bool = True
    check_hostname: bool = True
    cert_file: str | None = None
    key_file: str | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file or None)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif not self.check_hostname:
            context.check_hostname = False
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file or None)
        return context


@dataclass
class Connection:
    """Where the API server is and how to prove who we are; counts the calls it makes."""

    host: str
    tls: Tls
    authorization: Callable[[], str | None]
    namespace: str = "default"
    # kubectl's --as/--as-group: sent as Impersonate-* headers on every call and watch; the API
    # server checks the caller's `impersonate` permission each time.
    impersonate: Sequence[tuple[str, str]] = ()
    calls: int = 0
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_configuration(
        cls, configuration: kubernetes.client.Configuration, *, namespace: str = "default"
    ) -> Connection:
        def authorization() -> str | None:
            # auth_settings runs the refresh hook (exec plugins, rotated in-cluster tokens) and knows
            # where this version of the client keeps the token ('BearerToken' or 'authorization').
            value = configuration.auth_settings().get("BearerToken", {}).get("value")
            return str(value) if value else None

        return cls(
            host=configuration.host.rstrip("/"),
            tls=Tls(
                ca_file=configuration.ssl_ca_cert or None,
                verify=bool(configuration.verify_ssl),
                check_hostname=configuration.assert_hostname is not False,
                cert_file=configuration.cert_file or None,
                key_file=configuration.key_file or None,
            ),
            authorization=authorization,
            namespace=namespace,
        )

    @classmethod
    def from_kubeconfig(
        cls, path: str | Path | None = None, *, context: str | None = None, namespace: str | None = None
    ) -> Connection:
        configuration = kubernetes.client.Configuration()
        # $KUBECONFIG is read now, not when the Kubernetes client was imported (it may list several
        # files, merged as kubectl merges them).
        path = path or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        try:
            kubernetes.config.load_kube_config(
                config_file=str(path),
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
            _, active = kubernetes.config.list_kube_config_contexts(config_file=str(path))
            if context:
                contexts, _ = kubernetes.config.list_kube_config_contexts(config_file=str(path))
                active = next((c for c in contexts if c.get("name") == context), active)
        except (ConfigException, OSError) as exc:
            raise JitgrantError(
                f"cannot load kubeconfig {path}: {exc}",
                reason=Reason.API_UNREACHABLE,
            ) from exc
        default = str(((active or {}).get("context") or {}).get("namespace") or "default")
        return cls.from_configuration(configuration, namespace=namespace or default)

    @classmethod
    def in_cluster(cls, *, namespace: str | None = None) -> Connection:
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        except ConfigException as exc:
            raise JitgrantError(
                f"not running in a pod with a ServiceAccount token: {exc}", reason=Reason.API_UNREACHABLE
            ) from exc
        if namespace is None:
            try:
                namespace = IN_CLUSTER_NAMESPACE_FILE.read_text().strip()
            except OSError:
                namespace = "default"
        return cls.from_configuration(configuration, namespace=namespace or "default")

    def with_token(self, token: str, *, namespace: str | None = None) -> Connection:
        """The same API server, authenticated only by `token` (the caller's, passed through)."""
        return Connection(
            host=self.host,
            tls=replace(self.tls, cert_file=None, key_file=None),
            authorization=lambda: f"Bearer {token}",
            namespace=namespace or self.namespace,
        )

    # -- calls --------------------------------------------------------------------------------
    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.tls.context()),
                timeout=aiohttp.ClientTimeout(sock_connect=_CONNECT_TIMEOUT, sock_read=_READ_TIMEOUT),
                # A multidict: one Impersonate-Group line per group, as the API server reads them.
                headers=CIMultiDict(self.impersonate),
            )
        return self._session

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self.authorization()
        if token:
            headers["Authorization"] = token
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> ApiResponse:
        self.calls += 1
        try:
            async with self._http().request(
                method,
                self.host + path,
                params=dict(params or {}),
                data=json.dumps(body) if body is not None else None,
                headers=self._headers(content_type if body is not None else None),
            ) as response:
                text = await _text(response, what=f"the API server's answer to {method} {path}")
                warnings = [_warning_text(value) for value in response.headers.getall("Warning", [])]
                if response.status >= 400:
                    raise refused(response.status, text)
                return ApiResponse(body=json.loads(text) if text else {}, warnings=warnings)
        except BodyError as exc:
            raise ApiUnreachable(str(exc), reason=Reason.API_UNREACHABLE) from exc
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
            raise ApiUnreachable(unreachable(self.host, exc), reason=Reason.API_UNREACHABLE) from exc

    async def watch(self, path: str, params: Mapping[str, str]) -> AsyncIterator[dict[str, Any]]:
        """One watch connection's events, until the server ends it; the caller resumes."""
        self.calls += 1
        query = {
            **params,
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        timeout = aiohttp.ClientTimeout(sock_connect=_CONNECT_TIMEOUT, sock_read=WATCH_SECONDS + 30)
        try:
            async with self._http().get(
                self.host + path, params=query, headers=self._headers(), timeout=timeout
            ) as response:
                if response.status >= 400:
                    raise refused(
                        response.status, await _text(response, what=f"the API server's answer to {path}")
                    )
                async for line in response.content:
                    if line.strip():
                        yield json.loads(line)
        except (aiohttp.ClientError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            raise ApiUnreachable(
                f"the watch on {self.host} dropped ({exc or type(exc).__name__})",
                reason=Reason.API_UNREACHABLE,
            ) from exc


def request_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{quote(namespace)}/{REQUESTS}"
    return f"{base}/{quote(name)}" if name else base


def policy_path(name: str | None = None) -> str:
    base = f"/apis/{API_GROUP}/{API_VERSION}/{POLICIES}"
    return f"{base}/{quote(name)}" if name else base


def secret_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{quote(namespace)}/secrets/{quote(name)}"


async def _text(response: aiohttp.ClientResponse, *, what: str) -> str:
    """The whole body as text, read by the one helper (a body cut off says so, with its size)."""
    body = await read_body(
        response.content, limit=MAX_RESPONSE_BYTES, what=what, declared=response.content_length
    )
    return body.decode(response.get_encoding() if response.charset else "utf-8", errors="replace")


def refused(status: int, text: str) -> ApiRefused:
    try:
        message = str(json.loads(text).get("message") or text)
    except ValueError:
        message = text or f"HTTP {status}"
    if status == 401:
        message = (
            "the API server did not accept your credentials (401 Unauthorized); the token is missing or "
            "expired: refresh it or use another kubeconfig"
        )
    reason = Reason.REQUEST_NOT_FOUND if status == 404 else Reason.API_REFUSED
    return ApiRefused(message, status=status, reason=reason)


def _warning_text(header: str) -> str:
    """`299 - "text"` -> text (RFC 7234 warn-text; the API server escapes quotes with a backslash)."""
    _, _, rest = header.partition(" - ")
    rest = rest.strip()
    if rest.startswith('"') and rest.endswith('"'):
        rest = rest[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return rest or header
