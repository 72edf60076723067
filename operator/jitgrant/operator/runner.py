"""Starting the operator: build the Runtime from settings, hand it to kopf, run until stopped.

`OperatorThread` runs kopf on its own event loop in a background thread; the demo and the integration
tests use it to stop the operator and start it again, as an outage would.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import tempfile
import threading
import time
import typing
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kopf
import urllib3.exceptions
from kubernetes.client import ApiClient, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from jitgrant.audit.config import AuditConfig, FileSinkConfig, StdoutSinkConfig
from jitgrant.audit.trail import AuditTrail
from jitgrant.clusters.connection import kubeconfig_connection, own_cluster_connection
from jitgrant.clusters.eks import EKSAccess
from jitgrant.clusters.events import ClusterEvents
from jitgrant.clusters.gate import STATE_VALUES
from jitgrant.clusters.identity import ClusterCABundles, LeaseRefreshMarks
from jitgrant.clusters.own import ClusterApi, api_client_from
from jitgrant.clusters.registry import TargetClusters
from jitgrant.clusters.replay import SharedReplayCache
from jitgrant.health import Health, directory_accepts_writes
from jitgrant.identity.jwks import JWKSCache
from jitgrant.identity.oidc import OIDCVerifier
from jitgrant.metrics import Metrics
from jitgrant.models import API_GROUP, API_VERSION
from jitgrant.operator import registrations as registrations
from jitgrant.reactor.fencing import FencedAudit, FencedCluster, LeaderElection
from jitgrant.reactor.runtime import Runtime
from jitgrant.reconcile.ports import Notices
from jitgrant.settings import OperatorSettings

log = logging.getLogger("jitgrant.runner")

# Threads for blocking API calls, and connections kept per cluster client to match (clusters/own.py).
API_THREADS = 24
# (connect, read) seconds for every call to the operator's own cluster. The official client waits
# forever by default: a call on a connection an API server crash left half-open (a NAT entry gone),
# or a connect nothing answers, then never returns, and the pass making it, with the grant it should
# end, waits with it until the process restarts. The read timeout is per socket read, not per call:
# a long LIST still streams.
OWN_REQUEST_TIMEOUT = (5.0, 20.0)


def audit_config_for(settings: OperatorSettings, *, state_dir: Path) -> AuditConfig:
    """The platform team's audit config, or a development default: a JSON-lines file (+ stdout)."""
    if settings.audit_config is not None:
        import yaml

        raw = yaml.safe_load(settings.audit_config.read_text()) or {}
        return AuditConfig.model_validate(raw)
    sinks: list[FileSinkConfig | StdoutSinkConfig] = [
        FileSinkConfig(path=settings.audit_file or state_dir / "audit.jsonl", name="file")
    ]
    if settings.audit_stdout:
        sinks.append(StdoutSinkConfig(name="stdout"))
    return AuditConfig(sinks=tuple(sinks), spool_dir=state_dir / "spool")


def build_runtime(
    settings: OperatorSettings,
    *,
    kubeconfig: Mapping[str, Any] | str | None,
    state_dir: Path | None = None,
    metrics: Metrics | None = None,
    notifier: Notices | None = None,
    own_request_timeout: tuple[float, float] = OWN_REQUEST_TIMEOUT,
) -> Runtime:
    """The operator's Runtime, every adapter built here and handed to it at once."""
    state = state_dir or Path(tempfile.mkdtemp(prefix="jitgrant-"))
    client = api_client_from(kubeconfig)
    audit_config = audit_config_for(settings, state_dir=state)
    audit = AuditTrail.from_config(audit_config, instance=settings.instance)
    metrics = metrics or Metrics()
    audit.on_delivery_failure = lambda sink: metrics.audit_delivery_failed(sink=sink)
    audit.on_activity_summary = lambda event: metrics.agent_calls_refused(
        policy=event.policy or "", count=event.activity.refused if event.activity else 0
    )
    own = ClusterApi(name="in-cluster", client=client, request_timeout=own_request_timeout)
    # The replay set lives in the API server, so a token used through one replica's webhook is
    # refused by every other, and after restarts.
    identity_keys = JWKSCache(
        ttl=settings.jwks_cache_ttl,
        refetch_interval=settings.jwks_refetch_interval,
        fetch_budget=settings.identity_fetch_budget,
        ca_bundles=ClusterCABundles(client, namespace=settings.operator_namespace),
        refresh=LeaseRefreshMarks(client, namespace=settings.operator_namespace),
    )
    targets = (
        TargetClusters(
            own=kubeconfig_connection(config_dict=dict(kubeconfig))
            if isinstance(kubeconfig, Mapping)
            else own_cluster_connection(kubeconfig=kubeconfig),
            eks=EKSAccess(),
        )
        if settings.eks_enabled
        else None
    )
    return Runtime(
        settings=settings,
        own=own,
        own_api=own,
        audit=audit,
        metrics=metrics,
        events=ClusterEvents(own, component="jitgrant", instance=settings.instance),
        # Ready means the webhooks answer and a grant could be recorded now (the spool accepts writes).
        health=Health(
            audit_ready=directory_accepts_writes(audit_config.spool_dir),
            webhook=(settings.webhook.host, settings.webhook.port) if settings.webhook else None,
        ),
        targets=targets,
        identity_keys=identity_keys,
        oidc=OIDCVerifier(
            keys=identity_keys, replay=SharedReplayCache(client, namespace=settings.operator_namespace)
        ),
        notifier=notifier,
    )


def _kopf_vault() -> Any:
    """A new credentials vault for `kopf.operator(vault=...)`, a parameter of kopf's public API whose
    type kopf exports under no public name: it is read from that signature, not imported from kopf's
    private modules (which move between releases)."""
    hint = typing.get_type_hints(kopf.operator)["vault"]
    (vault_type,) = (arg for arg in typing.get_args(hint) if arg is not type(None))
    return vault_type()


def connection_info(client: ApiClient) -> kopf.ConnectionInfo:
    """kopf's credentials from the same client configuration the operator's own calls use."""
    config = client.configuration
    header = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix("authorization")
    scheme, token = None, None
    if header:
        parts = header.split(" ", 1)
        scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        scheme=scheme,
        token=token,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
        default_namespace="default",
    )


@kopf.on.login(id="login")
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    own = registrations.runtime_of(memo).own_api
    if own is None:
        raise kopf.PermanentError("jitgrant's runtime has no own cluster client; build it with build_runtime")
    return connection_info(own.client)


# The resources kopf watches. On a fresh install their CRDs were created a moment before the pods
# started, and the API server answers a list it serves from its watch cache with 429 ("storage is
# (re)initializing") until that cache has loaded; kopf's first list (no limit) is such a list, and
# kopf logs each retry at ERROR (issue 23, make e2e).
WATCHED_RESOURCES = ("accessrequests", "grantpolicies")
# A selector no object matches: a list with a selector is always served from the watch cache (one
# with only a limit goes to etcd while the cache loads), so its 200 says the cache has loaded.
_CACHE_PROBE_SELECTOR = "jitgrant.dev/cache-probe-matches-nothing"


async def wait_until_served(
    client: ApiClient,
    *,
    group: str = API_GROUP,
    version: str = API_VERSION,
    plurals: tuple[str, ...] = WATCHED_RESOURCES,
    give_up_after: float = 60.0,
    interval: float = 0.25,
) -> float:
    """Wait (at most `give_up_after` s) until the API server serves lists of `plurals` from its watch cache,
    so kopf's watches start on resources that answer. Returns the seconds waited. Gives up with a
    warning, not an error: kopf retries on its own, and an API server that is down must not hold
    the webhooks back for longer than this."""
    api = CustomObjectsApi(client)
    start = time.monotonic()
    waiting = list(plurals)
    last = ""
    while waiting:
        plural = waiting[0]
        try:
            await asyncio.to_thread(
                api.list_cluster_custom_object, group, version, plural,
                label_selector=_CACHE_PROBE_SELECTOR, _request_timeout=(2.0, 5.0),
            )  # fmt: skip
            waiting.pop(0)
            continue
        except ApiException as exc:
            if exc.status not in (404, 429, 503):
                waiting.pop(0)  # answered (a 403 is kopf's to report): not a loading cache
                continue
            last = f"{plural}: {exc.status} {exc.reason}"
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            last = f"{plural}: {exc}"
        if time.monotonic() - start > give_up_after:
            log.warning(
                "the API server does not serve %s yet after %.0fs (%s); starting anyway",
                plural,
                give_up_after,
                last,
            )
            break
        await asyncio.sleep(interval)
    waited = time.monotonic() - start
    if last:
        log.info("waited %.1fs for the API server to serve %s (last: %s)", waited, ", ".join(plurals), last)
    return waited


def leader_election(
    settings: OperatorSettings,
    *,
    kubeconfig: Mapping[str, Any] | str | None,
    lease_seconds: float = 8.0,
    renew_every: float = 1.0,
) -> LeaderElection:
    """The election among the replicas of one installation: a Lease in the operator's namespace,
    the pod name (`settings.instance`) as the identity."""
    return LeaderElection(
        api_client_from(kubeconfig),
        namespace=settings.operator_namespace,
        identity=settings.instance,
        lease_seconds=lease_seconds,
        renew_every=renew_every,
    )


async def run(
    runtime: Runtime,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
    registry: kopf.OperatorRegistry | None = None,
    exit_timeout: float | None = None,
    election: LeaderElection | None = None,
) -> None:
    """Run kopf with jitgrant's handlers until stop_flag is set (or forever).

    With `election`, this is one of several replicas: it serves the webhooks at once, and reconciles,
    expires and sweeps only while it holds the Lease; its writes to the own cluster are fenced.
    """
    settings = kopf.OperatorSettings()
    registrations.configure(settings, instance=runtime.settings.instance)
    if exit_timeout is not None:
        settings.queueing.exit_timeout = exit_timeout
    webhook = runtime.settings.webhook
    if webhook is not None:
        # Certificates come from files (cert-manager, the chart, or generated with `cryptography`
        # in embedded mode): kopf's own self-signed path needs oscrypto, broken on OpenSSL 3.0.
        settings.admission.server = kopf.WebhookServer(
            addr=webhook.host,
            port=webhook.port,
            host=webhook.public_host,
            certfile=str(webhook.certfile) if webhook.certfile else None,
            pkeyfile=str(webhook.keyfile) if webhook.keyfile else None,
            # Only a caller with a client certificate from this CA (the API server) gets past TLS.
            verify_mode=ssl.CERT_REQUIRED if webhook.client_ca_file else None,
            verify_cafile=str(webhook.client_ca_file) if webhook.client_ca_file else None,
        )
    if runtime.settings.metrics_port is not None:
        runtime.metrics.start_server(host="0.0.0.0", port=runtime.settings.metrics_port)  # noqa: S104
    # Every call to a cluster runs in a thread (the official client blocks): asyncio's default pool
    # has cpu + 4 threads, 6 on two cores, which capped the API calls in flight for everything the
    # operator does at once (1,000 expiries in the same second queued behind it).
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=API_THREADS, thread_name_prefix="jitgrant-api")
    )
    if runtime.own_api is not None:
        await wait_until_served(runtime.own_api.client)
    if runtime.targets is not None:  # each target cluster's circuit, as a metric (clusters/gate.py)
        runtime.targets.gates.observe(
            lambda cluster, state: runtime.metrics.set_target_circuit(
                cluster=cluster, state=STATE_VALUES[state]
            )
        )
    memo = kopf.Memo(runtime=runtime)
    if election is not None:
        memo.election = election
        runtime.own = FencedCluster(runtime.own, election)
        runtime.audit = FencedAudit(runtime.audit, election)
    # Our own vault so its aiohttp sessions are closed even when kopf skips its own close (it does
    # when its cleanup is cut short): an unclosed session leaks sockets past the loop's end.
    vault = _kopf_vault()
    try:
        await kopf.operator(
            registry=registry,
            settings=settings,
            standalone=True,
            clusterwide=True,
            memo=memo,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
            vault=vault,
        )
    finally:
        try:
            await vault.close()  # a no-op for what kopf closed already
        except Exception:
            log.exception("closing the API sessions failed")
        if runtime.settings.metrics_port is not None:
            runtime.metrics.stop_server()
        # The official client keeps a urllib3 pool (and a thread pool) per ApiClient.
        runtime.close()
        if election is not None:
            election.close()


class OperatorThread:
    """The operator on its own event loop in a daemon thread: start(), stop(), start() again."""

    def __init__(
        self, runtime_factory: Any, *, exit_timeout: float = 1.0, election_factory: Any = None
    ) -> None:
        # Once stop() is called no transition starts (runtime.stopping), so there is nothing for
        # kopf's per-object workers to finish: a short exit keeps restarts and tests quick.
        self._exit_timeout = exit_timeout
        self._factory = runtime_factory
        # Called with the Runtime at each start: a LeaderElection makes this one replica of several.
        self._election_factory = election_factory
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        self.runtime: Runtime | None = None
        self.election: LeaderElection | None = None
        self.error: BaseException | None = None

    def start(self, *, timeout: float = 30.0) -> Runtime:
        self._stop = threading.Event()
        ready = threading.Event()
        runtime: Runtime = self._factory()
        self.runtime = runtime
        election = self._election_factory(runtime) if self._election_factory is not None else None
        self.election = election

        def main() -> None:
            try:
                asyncio.run(
                    run(
                        runtime,
                        stop_flag=self._stop,
                        ready_flag=ready,
                        exit_timeout=self._exit_timeout,
                        election=election,
                    )
                )
            except BaseException as exc:
                self.error = exc
                ready.set()

        self._thread = threading.Thread(target=main, name="jitgrant-operator", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or self.error is not None:
            raise RuntimeError(f"the operator did not start: {self.error!r}")
        return runtime

    def stop(self, *, timeout: float = 30.0) -> None:
        """Stop as a crash would: no transition starts once stop() is called (kopf itself takes a
        few seconds to wind down, during which timers would otherwise still fire)."""
        if self.runtime is not None:
            self.runtime.stopping = True
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("the operator did not stop in time")
        self._thread = None
