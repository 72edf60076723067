"""Replicas of the operator against one embedded cluster, each with its own identity and Lease view."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import Any

from kubernetes.client import CoreV1Api, RbacAuthorizationV1Api

from jitgrant.clusters.leader import LeaderElection
from jitgrant.operator.runner import OperatorThread, build_runtime, leader_election
from jitgrant.reactor.runtime import Runtime
from jitgrant_testing.environment import (
    EXAMPLES,
    OPERATOR_NAMESPACE,
    OPERATOR_SERVICE_ACCOUNT,
    Environment,
    load_manifests,
)

# The ClusterRole AUTO_POLICY grants: without it the policy is not Ready, and the webhook refuses its
# requests before they are filed, as a real request under it would end Failed.
CLUSTER_ROLE = load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml")

AUTO_POLICY = {
    "apiVersion": "jitgrant.dev/v1alpha1",
    "kind": "GrantPolicy",
    "metadata": {"name": "scale-auto"},
    "spec": {
        "requesters": {"serviceAccounts": [{"namespace": "agents", "name": "oncall-agent"}]},
        "target": {"type": "InCluster"},
        "namespaces": ["payments"],
        "grants": [{"clusterRole": "jit-restart-checkout"}],
        "maxDuration": "1h",
        "defaultDuration": "10m",
        "approval": {"required": False},
        # One agent files many requests for one scope here: the guardrail (issue 31) is off.
        "limits": {"oneOpenPerScope": False},
    },
}


def request(name: str, duration: str) -> dict[str, object]:
    return {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": name, "namespace": "agents"},
        "spec": {
            "policy": "scale-auto",
            "namespace": "payments",
            "clusterRole": "jit-restart-checkout",
            "duration": duration,
            "justification": f"INC-1 {name}",
        },
    }


def kubeconfig_as(env: Environment, service_account: str | None) -> dict[str, Any]:
    """The operator's kubeconfig, or one for another ServiceAccount (see `operator_twin`)."""
    if service_account is None:
        return env._operator_kubeconfig()
    token = env.service_account_token(OPERATOR_NAMESPACE, service_account, seconds=24 * 3600)
    return env.cluster.kubeconfig(token=token)


def operator_twin(env: Environment, service_account: str) -> str:
    """A second ServiceAccount with exactly the operator's ClusterRoles, so the API server's audit
    log tells one replica's requests from the other's; returns its username."""
    CoreV1Api(env.admin).create_namespaced_service_account(
        OPERATOR_NAMESPACE, {"metadata": {"name": service_account}}
    )
    rbac = RbacAuthorizationV1Api(env.admin)
    for binding in rbac.list_cluster_role_binding().items:
        subjects = binding.subjects or []
        if any(s.kind == "ServiceAccount" and s.name == OPERATOR_SERVICE_ACCOUNT for s in subjects):
            twin = {"kind": "ServiceAccount", "name": service_account, "namespace": OPERATOR_NAMESPACE}
            rbac.patch_cluster_role_binding(
                binding.metadata.name,
                {"subjects": [*env.admin.sanitize_for_serialization(subjects), twin]},
            )
    return f"system:serviceaccount:{OPERATOR_NAMESPACE}:{service_account}"


def replica(
    env: Environment,
    identity: str,
    *,
    webhook_port: int,
    lease_seconds: float = 8.0,
    service_account: str | None = None,
) -> OperatorThread:
    """One more replica: its own instance name, audit file and webhook port (behind a ServiceProxy);
    with `service_account`, calling the API server as that account (made by `operator_twin`)."""
    base = env._runtime_factory

    def runtime() -> Runtime:
        template = base()  # the harness's settings; its runtime itself is not used
        template.close()
        webhook = template.settings.webhook
        if webhook is not None:
            webhook = webhook.model_copy(update={"port": webhook_port})
        state = Path(env.state_dir) / identity
        state.mkdir(exist_ok=True)
        settings = template.settings.model_copy(
            update={"instance": identity, "webhook": webhook, "audit_file": state / "audit.jsonl"}
        )
        return build_runtime(settings, kubeconfig=kubeconfig_as(env, service_account), state_dir=state)

    def election(built: Runtime) -> LeaderElection:
        return leader_election(
            built.settings,
            kubeconfig=kubeconfig_as(env, service_account),
            lease_seconds=lease_seconds,
            renew_every=1.0,  # the production timing (runner.leader_election)
        )

    return OperatorThread(runtime, election_factory=election)


class ServiceProxy:
    """What a Service does for the webhooks: connections to one port go to a replica that answers
    (TLS passes through untouched). The webhook configurations keep pointing at `port`."""

    def __init__(self, port: int, backends: list[int]) -> None:
        self.port = port
        self.backends = backends
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        for backend in self.backends:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", backend)
            except OSError:
                continue
            self._writers.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            return
        writer.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def __enter__(self) -> ServiceProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
