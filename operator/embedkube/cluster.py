"""``EmbeddedCluster``: the API server on its own event loop in a daemon thread.

Its own loop means synchronous clients (the official client, kubectl) and other loops (a kopf
operator in another thread) can all talk to it over real HTTP while tests keep control.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import os
import secrets
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import kubernetes.client
import yaml
from aiohttp import web

from . import bootstrap
from .admission import WebhookCaller
from .audit import AuditLogWriter
from .authn import MASTERS, TokenAuthenticator, User
from .clock import Clock
from .crud import Api, Call
from .faults import FaultInjector
from .rbac import RbacAuthorizer
from .resources import ResourceRegistry
from .server import Server
from .store import Store
from .tls import make_certificates

T = TypeVar("T")
ADMIN = User("kubernetes-admin", "admin", (MASTERS,))


class EmbeddedCluster:
    """An in-process Kubernetes API server with authn, RBAC, admission webhooks and watches."""

    def __init__(
        self,
        *,
        name: str = "embedded",
        crd_manifests: Sequence[Mapping[str, Any]] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        authorize: bool = True,
        audit_log: Path | None = None,
    ) -> None:
        self.name = name
        self.audit_log = audit_log  # where audit.k8s.io Events go, as kube-apiserver's --audit-log-path
        self.host = host
        self._port = port
        self._crd_manifests = [dict(m) for m in crd_manifests]
        self.clock = Clock()
        self.store = Store()
        self.registry = ResourceRegistry()
        self.authn = TokenAuthenticator(self.clock, self._service_account_uid)
        self.authn.bound_lookup = self._bound_object_uid
        self.authorizer = RbacAuthorizer(self.store)
        self.webhooks = WebhookCaller(self.store)
        #: Refused requests and dropped watches for one user, toggled by tests (off by default).
        self.faults = FaultInjector(self.authn.authenticate)
        self.api = Api(
            registry=self.registry,
            store=self.store,
            clock=self.clock,
            authorizer=self.authorizer,
            webhooks=self.webhooks,
        )
        self._authorize = authorize
        self.admin_token = secrets.token_urlsafe(24)
        self.authn.add_static(self.admin_token, ADMIN)
        self.url = ""
        # kubectl (client-go) will not send a bearer token over plain HTTP: serve HTTPS too.
        self.https_url = ""
        self._tls = make_certificates((host, "localhost"))
        self.ca_pem = self._tls.ca_pem
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # ---- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=f"embedkube-{self.name}", daemon=True
        )
        self._thread.start()
        ready.result(timeout=30)

    def _run(self, ready: concurrent.futures.Future[None]) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # report start-up failures to start(), not into the void
            if not ready.done():
                ready.set_exception(exc)
            return
        ready.set_result(None)
        loop.run_forever()
        # Connections still in their TLS handshake live in accept tasks: cancel them so their
        # sockets close before the loop does (no ResourceWarning in the caller's tests).
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(asyncio.sleep(0.01))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    async def _serve(self) -> None:
        self._bootstrap()
        server = Server(api=self.api, authn=self.authn, authorize=self._authorize, address=f"{self.host}:0")
        if self.audit_log is not None:
            server.app.middlewares.append(AuditLogWriter(self.audit_log, self.clock).middleware)
        server.app.middlewares.append(self.faults.middleware)
        self._runner = web.AppRunner(
            server.app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self._port).start()
        port = int(self._runner.addresses[0][1])  # the real port when asked for port 0
        await web.TCPSite(self._runner, self.host, 0, ssl_context=self._tls.server_context()).start()
        tls_port = int(self._runner.addresses[1][1])
        server.address = f"{self.host}:{tls_port}"
        self.url = f"http://{self.host}:{port}"
        self.https_url = f"https://{self.host}:{tls_port}"

    def _bootstrap(self) -> None:
        ns = self.registry.get("", "v1", "namespaces")
        roles = self.registry.get("rbac.authorization.k8s.io", "v1", "clusterroles")
        bindings = self.registry.get("rbac.authorization.k8s.io", "v1", "clusterrolebindings")
        crds = self.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert ns and roles and bindings and crds
        for name in bootstrap.NAMESPACES:
            self.api.create_internal(ns, {"metadata": {"name": name}})
        for role in bootstrap.cluster_roles():
            self.api.create_internal(roles, role)
        for binding in bootstrap.cluster_role_bindings():
            self.api.create_internal(bindings, binding)
        for crd in self._crd_manifests:
            self.api.create_internal(crds, crd)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            self.store.close_watchers()
            if self._runner is not None:
                server = self._runner.server
                # A graceful TLS close waits up to 30 s for the peer's close_notify, which an idle
                # keep-alive client never sends: abort the connections instead.
                for handler in server.connections if server is not None else ():
                    if handler.transport is not None:
                        handler.transport.abort()
                await self._runner.cleanup()
            # Last: a request still being handled could otherwise open a new session (and
            # sockets nobody closes) after this one was closed.
            await self.webhooks.close()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        self._loop = self._thread = None

    def __enter__(self) -> EmbeddedCluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop (where the store lives) and wait for it."""
        if self._loop is None:
            raise RuntimeError("the embedded cluster is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    def call(self, fn: Callable[[], T]) -> T:
        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())

    # ---- identities ------------------------------------------------------------------------------

    def add_user(self, user: User, token: str | None = None) -> str:
        """Register a static bearer token for ``user`` (``--token-auth-file`` semantics)."""
        token = token or secrets.token_urlsafe(24)
        self.authn.add_static(token, user)
        return token

    def load_token_file(self, path: str | os.PathLike[str]) -> None:
        self.authn.load_token_file(Path(path))

    def add_authenticator(self, fn: Callable[[str], Awaitable[User | None]]) -> None:
        """An extra bearer-token authenticator (e.g. an EKS token checker), awaited on the server loop."""
        self.authn.add_plugin(fn)

    def map_service(self, fn: Callable[[str, str, int], str | None]) -> None:
        """How webhook ``clientConfig.service`` references are reached: (ns, name, port) -> base URL."""
        self.webhooks.map_service = fn

    def advance_clock(self, seconds: float) -> None:
        """Move the cluster's clock forward (token expiry) without sleeping."""
        self.clock.advance(timedelta(seconds=seconds))

    def compact(self) -> None:
        """Forget the watch history, like an etcd compaction: older resourceVersions then get 410 Gone."""
        self.call(self.store.compact)

    # ---- clients ---------------------------------------------------------------------------------

    def kubeconfig(
        self, *, token: str, namespace: str | None = None, user_name: str = "user"
    ) -> dict[str, Any]:
        """A kubeconfig for the HTTPS endpoint (with its CA), usable by kubectl and the Python client."""
        context: dict[str, Any] = {"cluster": self.name, "user": user_name}
        if namespace:
            context["namespace"] = namespace
        ca_data = base64.b64encode(self.ca_pem).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [
                {
                    "name": self.name,
                    "cluster": {"server": self.https_url, "certificate-authority-data": ca_data},
                }
            ],
            "users": [{"name": user_name, "user": {"token": token}}],
            "contexts": [{"name": self.name, "context": context}],
            "current-context": self.name,
        }

    def write_kubeconfig(
        self, path: str | os.PathLike[str], *, token: str, namespace: str | None = None
    ) -> None:
        target = Path(path)
        target.write_text(yaml.safe_dump(self.kubeconfig(token=token, namespace=namespace)))
        target.chmod(0o600)  # it holds a bearer token

    def api_client(self, *, token: str | None = None) -> kubernetes.client.ApiClient:
        config = kubernetes.client.Configuration()
        config.host = self.url
        # The full header value, so it works whichever key (authorization/BearerToken) the client reads.
        config.api_key = {"authorization": f"Bearer {token or self.admin_token}"}
        return kubernetes.client.ApiClient(config)

    # ---- direct access for tests and demos ---------------------------------------------------------

    def create(
        self, body: Mapping[str, Any], *, namespace: str | None = None, user: User = ADMIN
    ) -> dict[str, Any]:
        """Create an object as ``user`` through the full write pipeline (admission included)."""
        rt = self.registry.find_kind(body["apiVersion"], body["kind"])
        if rt is None:
            raise LookupError(f"no resource for {body['apiVersion']} {body['kind']}")
        ns = (
            namespace or (body.get("metadata") or {}).get("namespace") or ("default" if rt.namespaced else "")
        )
        return self.run(self.api.create(Call(user=user), rt, ns, dict(body)))

    def _bound_object_uid(self, kind: str, namespace: str, name: str) -> str | None:
        plural = {"pod": "pods", "secret": "secrets", "node": "nodes"}[kind]
        obj = self.store.peek(("", plural), namespace, name)
        return None if obj is None else str(obj["metadata"]["uid"])

    def _service_account_uid(self, namespace: str, name: str) -> str | None:
        sa = self.store.peek(("", "serviceaccounts"), namespace, name)
        return None if sa is None else str(sa["metadata"]["uid"])
