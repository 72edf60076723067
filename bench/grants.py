"""Grants at scale on an API server, each figure next to a floor measured in the same run on it.

The operator runs as its own process (`jitgrant run`, as in a pod), so its RSS is its own and the
chaos suite can SIGKILL it. The floor is a minimal client making the same API calls with no
operator acting: it files the request through the webhooks (served by a standby replica that never
gets the Lease), creates the RoleBinding and patches status to Active.

Figures: throughput at N1 and N2 requests filed at once; create -> Active p50/p95/p99 (first time a
watch sees Active); expiry lag (expiresAt -> RoleBinding DELETED) with expiries spread over 40 s and
with all in the same second; revoke lag (annotation -> RoleBinding DELETED); operator RSS at 0 / N1 /
N2 active and after the churn; the start-up sweep of N2 expired bindings. The same-second and spread
expiries move expiresAt by a status patch from outside; "expiresAt the operator's" files N2 grants
for the time left until one instant, so their expiresAt is the one the operator wrote. Natural
expiry files N2 requests evenly over 40 s that activate and expire on their own (20 s each, or
each until one shared instant). Beside each throughput figure, for the floor and jitgrant alike:
CPU seconds per 1,000 grants of each process (/proc/<pid>/stat: the operator; kube-apiserver, etcd
and kube-controller-manager on the real server; the bench process, which holds the embedded server,
on the embedded one) and API calls per grant by user from the server's audit log, the operator's by
verb and resource and those answered 409 Conflict (`BENCH_AUDIT_DUMP=FILE` keeps the audit
log's lines of the last part measured, to follow one request's calls). Prints a table (and JSON
with --json); asserts nothing (tests/scale guards the order of magnitude).

`--server embedded` (the default) is operator/embedkube; `--server real` is etcd + kube-apiserver +
kube-controller-manager as `make kube` built them (jitgrant_testing.controlplane), with the chart's
RBAC and webhooks installed as tests/realapi installs them. Without those binaries `--server real`
says so in one loud line and exits 3, which `make bench` lets pass. The JSON records the server.

Run: `make bench` (--quick on both servers) or
`python bench/grants.py [--quick | --full] [--server {embedded,real}] [--json FILE]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from kubernetes import watch
from kubernetes.client import (
    ApiClient,
    CoordinationV1Api,
    CustomObjectsApi,
    RbacAuthorizationV1Api,
    VersionApi,
)

from jitgrant.clusters.grant_objects import sealed
from jitgrant.clusters.leader import LEASE_NAME
from jitgrant.models.vocabulary import (
    EXPIRES_AT_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    REQUEST_ANNOTATION,
    REVOKE_ANNOTATION,
    format_time,
)
from jitgrant.reactor.sweep import sweep_all
from jitgrant_testing.environment import (
    OPERATOR_NAMESPACE,
    OPERATOR_SERVICE_ACCOUNT,
    Environment,
    free_port,
)

GROUP, VERSION = "jitgrant.dev", "v1alpha1"
SERVERS = ("embedded", "real")
# `--server real` without `make kube`'s binaries: `make bench` lets exactly this exit status pass.
EXIT_NO_SERVER = 3
THREADS = 8  # concurrent clients filing requests, for the floor and for jitgrant alike
# Revoke lag is measured this long after the last grant went Active, so it times the revocations and
# not the tail of the activations' own follow-up passes (which made it 0.5 s worse at 20).
REVOKE_SETTLE_S = 4.0
# CPU and API calls of a throughput part are counted this long past the last grant's Active, so the
# follow-up passes a grant causes count against it (the floor gets the same wait).
SETTLE_S = 3.0
# Natural expiry: requests filed evenly over this many seconds, each granted for NATURAL_DURATION_S
# (or until one shared instant that long after the last filing).
NATURAL_FILING_S = 40
NATURAL_DURATION_S = 20
POLICY = {
    "apiVersion": "jitgrant.dev/v1alpha1",
    "kind": "GrantPolicy",
    "metadata": {"name": "bench-auto"},
    "spec": {
        "requesters": {"serviceAccounts": [{"namespace": "agents", "name": "bench-agent"}]},
        "target": {"type": "InCluster"},
        "namespaces": ["payments"],
        "grants": [{"clusterRole": "jit-restart-checkout"}],
        "maxDuration": "1h",
        "defaultDuration": "30m",
        "approval": {"required": False},
        # One agent files every request for the same scope: the bench measures throughput, not the
        # one-open-request-per-scope guardrail (issue 31), so it is off for this policy.
        "limits": {"oneOpenPerScope": False},
    },
}
CLUSTER_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "jit-restart-checkout"},
    "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]}],
}


def _now() -> float:
    return time.time()


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")


def _dist(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": _quantile(values, 0.5),
        "p95": _quantile(values, 0.95),
        "p99": _quantile(values, 0.99),
        "max": max(values) if values else float("nan"),
    }


def _lead(count: int) -> timedelta:
    """Time to write `count` expiresAt values before the first is due."""
    return timedelta(seconds=5 + count / 20)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) so far, from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}"
AGENT_USER = "system:serviceaccount:agents:bench-agent"


@dataclass
class Meter:
    """CPU seconds of each process and API calls by user (the server's audit log) over one part.

    CPU is what is stable on a shared machine where wall time is not; the audit log counts every
    request that completed (ResponseComplete), watches included, by who made it.
    """

    pids: dict[str, int]
    audit_log: Path | None
    _cpu: dict[str, float] = field(default_factory=dict)
    _offset: int = 0

    def start(self) -> Meter:
        self._cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._offset = self.audit_log.stat().st_size if self.audit_log and self.audit_log.exists() else 0
        return self

    def stop(self, grants: int) -> dict[str, Any]:
        cpu = {name: (cpu_seconds(pid) - self._cpu[name]) * 1000 / grants for name, pid in self.pids.items()}
        out: dict[str, Any] = {"cpu_s_per_1000": cpu}
        if self.audit_log is not None and self.audit_log.exists():
            with self.audit_log.open("rb") as log:
                log.seek(self._offset)
                data = log.read()
            calls = {"operator": 0, "agent": 0, "other": 0}
            kinds: dict[str, int] = {}  # the operator's calls by verb and resource
            conflicts: dict[str, int] = {}  # those answered 409 Conflict (a write that lost a race)
            for line in data.splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # a line being written as we read
                if event.get("stage") != "ResponseComplete":
                    continue
                user = (event.get("user") or {}).get("username", "")
                who = "operator" if user == OPERATOR_USER else "agent" if user == AGENT_USER else "other"
                calls[who] += 1
                if who == "operator":
                    ref = event.get("objectRef") or {}
                    sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
                    kind = f"{event.get('verb', '')} {ref.get('resource', '')}{sub}"
                    kinds[kind] = kinds.get(kind, 0) + 1
                    if (event.get("responseStatus") or {}).get("code") == 409:
                        conflicts[kind] = conflicts.get(kind, 0) + 1
            out["calls_per_grant"] = {who: count / grants for who, count in calls.items()}
            out["operator_calls_per_grant"] = {
                kind: round(count / grants, 2) for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1])
            }
            out["operator_conflicts_per_grant"] = {
                kind: round(count / grants, 2)
                for kind, count in sorted(conflicts.items(), key=lambda kv: -kv[1])
            }
            if os.environ.get("BENCH_AUDIT_DUMP"):
                Path(os.environ["BENCH_AUDIT_DUMP"]).write_bytes(data)
        return out


def server_processes(env: Environment) -> tuple[dict[str, int], Path | None]:
    """The API server's processes to meter, and its audit log. The embedded server runs inside this
    process, beside the bench's own clients and watches: its figure is that whole process's."""
    plane = getattr(env, "plane", None)
    if plane is not None:
        return plane.pids(), plane.audit_log_path
    return {"bench process (embedded server, clients)": os.getpid()}, env.cluster.audit_log


def _request(name: str, duration: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AccessRequest",
        "metadata": {"name": name, "namespace": "agents"},
        "spec": {
            "policy": "bench-auto",
            "namespace": "payments",
            "clusterRole": "jit-restart-checkout",
            "duration": duration,
            "justification": f"INC-1 {name}",
        },
    }


@dataclass
class Watcher:
    """When each request was first seen Active, each binding ADDED and DELETED (wall clock)."""

    env: Environment
    active: dict[str, float] = field(default_factory=dict)
    expires: dict[str, float] = field(default_factory=dict)
    added: dict[str, float] = field(default_factory=dict)
    deleted: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Watcher:
        for target in (self._requests, self._bindings):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _loop(self, stream: Callable[[watch.Watch, str | None], Iterator[dict[str, Any]]]) -> None:
        # Each short watch resumes at the last resourceVersion seen: no event between two is lost.
        version: str | None = None
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for event in stream(w, version):
                    if self._stop.is_set():
                        w.stop()
                        return
                    self._on(event)
                    obj = event["object"]
                    version = (
                        obj["metadata"]["resourceVersion"]
                        if isinstance(obj, dict)
                        else obj.metadata.resource_version
                    )
            except Exception:
                version = None  # e.g. 410 Gone: list again (events in between are then missed)
                time.sleep(0.2)

    def _requests(self) -> None:
        api = CustomObjectsApi(self.env.admin)
        self._loop(
            lambda w, version: w.stream(
                api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                "agents",
                "accessrequests",
                timeout_seconds=5,
                resource_version=version,
            )
        )

    def _bindings(self) -> None:
        api = RbacAuthorizationV1Api(self.env.admin)
        self._loop(
            lambda w, version: w.stream(
                api.list_namespaced_role_binding, "payments", timeout_seconds=5, resource_version=version
            )
        )

    def _on(self, event: dict[str, Any]) -> None:
        at = _now()
        obj = event["object"]
        if isinstance(obj, dict):  # an AccessRequest
            name = obj["metadata"]["name"]
            status = obj.get("status") or {}
            if status.get("phase") == "Active":
                self.active.setdefault(name, at)
                if status.get("expiresAt"):
                    self.expires[name] = datetime.fromisoformat(
                        status["expiresAt"].replace("Z", "+00:00")
                    ).timestamp()
            return
        name = (obj.metadata.annotations or {}).get(REQUEST_ANNOTATION, obj.metadata.name).rpartition("/")[2]
        if event["type"] == "ADDED":
            self.added.setdefault(name, at)
        elif event["type"] == "DELETED":
            self.deleted.setdefault(name, at)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(7)


class OperatorProcess:
    """`jitgrant run` against the environment's API server, as a pod would run it."""

    def __init__(
        self, env: Environment, workdir: Path, *, identity: str, leader_elect: bool, webhooks: bool
    ) -> None:
        self.env, self.workdir, self.identity = env, workdir, identity
        kubeconfig = workdir / f"{identity}.kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(env._operator_kubeconfig()))
        kubeconfig.chmod(0o600)
        key = workdir / "receipt.key"
        key.write_bytes(env.receipt_key)
        key.chmod(0o600)
        webhook = env._webhook
        port = webhook.port if webhooks else free_port()
        self.args = [
            str(Path(sys.executable).parent / "jitgrant"),
            "run",
            "--kubeconfig",
            str(kubeconfig),
            "--namespace-of-operator",
            OPERATOR_NAMESPACE,
            "--instance",
            identity,
            "--webhook-port",
            str(port),
            "--webhook-cert",
            str(webhook.certfile),
            "--webhook-key",
            str(webhook.keyfile),
            "--receipt-key-file",
            str(key),
            "--log-level",
            "warning",
        ] + (["--leader-elect"] if leader_elect else [])
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        env = dict(os.environ, OPERATOR_SERVICE_ACCOUNT=OPERATOR_SERVICE_ACCOUNT, TMPDIR=str(self.workdir))
        log = open(self.workdir / f"{self.identity}.log", "ab")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=log, env=env)  # noqa: S603
        log.close()
        import socket

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    # The workdir is removed on the way out: say why here.
                    tail = (self.workdir / f"{self.identity}.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"operator exited:\n{tail}") from None
                time.sleep(0.1)
        raise RuntimeError("the operator's webhook server did not listen")

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def hold_lease_elsewhere(env: Environment) -> None:
    """A Lease held by nobody running, for an hour: a replica started now only serves webhooks."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    CoordinationV1Api(env.admin).create_namespaced_lease(
        OPERATOR_NAMESPACE,
        {
            "metadata": {"name": LEASE_NAME},
            "spec": {
                "holderIdentity": "bench-floor",
                "leaseDurationSeconds": 3600,
                "renewTime": now,
                "acquireTime": now,
            },
        },
    )


def release_lease(env: Environment) -> None:
    CoordinationV1Api(env.admin).delete_namespaced_lease(LEASE_NAME, OPERATOR_NAMESPACE)


class Bench:
    def __init__(self, env: Environment, workdir: Path) -> None:
        self.env, self.workdir = env, workdir
        self.agents = [env.client_for_service_account("agents", "bench-agent") for _ in range(THREADS)]
        self.operator_client: ApiClient = env._client(
            token=env.service_account_token(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT)
        )
        self.batch = 0
        self.late_patches = 0  # expiresAt values set after they were due (set_expiry)

    def names(self, count: int) -> list[str]:
        self.batch += 1
        return [f"b{self.batch}-{index}" for index in range(count)]

    def file(
        self,
        names: list[str],
        duration: str | Callable[[int], str],
        *,
        then: Callable[[str], None] | None = None,
        over: float = 0.0,
    ) -> dict[str, float]:
        """File every request from THREADS clients at once (or spread evenly over `over` seconds);
        returns when each create returned."""
        created: dict[str, float] = {}
        begin = _now()

        def one(index: int) -> None:
            if over:
                time.sleep(max(0.0, begin + over * index / len(names) - _now()))
            name = names[index]
            text = duration(index) if callable(duration) else duration
            started = _now()
            self.env.create_request(_request(name, text), client=self.agents[index % THREADS])
            created[name] = started
            if then is not None:
                then(name)

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(one, range(len(names))))
        return created

    # ---- the floor ---------------------------------------------------------------------------

    def floor_grant(self, name: str) -> None:
        """What the operator must do at least: the RoleBinding, then status Active."""
        rbac = RbacAuthorizationV1Api(self.operator_client)
        rbac.create_namespaced_role_binding(
            "payments",
            {
                "metadata": {
                    "name": f"floor-{name}",
                    "annotations": {REQUEST_ANNOTATION: f"agents/{name}"},
                    # The chart's admission policy lets the operator's identity write only these.
                    "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
                },
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "jit-restart-checkout",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "bench-agent", "namespace": "agents"}],
            },
        )
        now = datetime.now(UTC)
        CustomObjectsApi(self.operator_client).patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            "agents",
            "accessrequests",
            name,
            {
                "status": {
                    "phase": "Active",
                    "activatedAt": format_time(now),
                    "expiresAt": format_time(now + timedelta(minutes=30)),
                }
            },
        )

    def meter(self, operator: OperatorProcess) -> Meter:
        assert operator.proc is not None
        pids, audit_log = server_processes(self.env)
        return Meter({"operator": operator.proc.pid, **pids}, audit_log).start()

    def floor_throughput(self, count: int, watcher: Watcher, standby: OperatorProcess) -> dict[str, Any]:
        names = self.names(count)
        meter = self.meter(standby)
        started = _now()
        created = self.file(names, "30m", then=self.floor_grant)
        done = _now()
        _wait(lambda: all(n in watcher.active for n in names), timeout=60)
        time.sleep(SETTLE_S)
        lat = [watcher.active[n] - created[n] for n in names if n in watcher.active]
        return {"per_s": count / (done - started), "to_active": _dist(lat), **meter.stop(count)}

    def remove_floor_bindings(self) -> None:
        """The floor's grants go before jitgrant runs (untimed): labelled as the operator's but not
        sealed, they would otherwise be work for its sweep."""
        rbac = RbacAuthorizationV1Api(self.env.admin)
        items = rbac.list_namespaced_role_binding("payments").items
        names = [item.metadata.name for item in items if item.metadata.name.startswith("floor-b")]

        def delete(name: str) -> None:
            rbac.delete_namespaced_role_binding(name, "payments")

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(delete, names))

    def floor_sweep(self, count: int) -> float:
        self.plant_expired(count, prefix="floor-sweep")
        rbac = RbacAuthorizationV1Api(self.operator_client)
        started = _now()
        items = rbac.list_role_binding_for_all_namespaces(
            label_selector="app.kubernetes.io/managed-by=jitgrant"
        ).items
        items = [item for item in items if item.metadata.name.startswith("floor-sweep")]

        def delete(item: Any) -> None:
            rbac.delete_namespaced_role_binding(item.metadata.name, item.metadata.namespace)

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(delete, items))
        return _now() - started

    # ---- jitgrant ----------------------------------------------------------------------------

    def throughput(
        self, count: int, watcher: Watcher, operator: OperatorProcess | None = None, duration: str = "30m"
    ) -> tuple[dict[str, Any], list[str]]:
        """`count` requests at once; with `operator`, also its CPU and API calls per grant (and the
        API server's), measured until every grant is Active plus SETTLE_S for follow-up passes."""
        names = self.names(count)
        meter = self.meter(operator) if operator is not None else None
        started = _now()
        created = self.file(names, duration)
        _wait(lambda: all(n in watcher.active for n in names), timeout=max(120, count))
        last = max((watcher.active.get(n, _now()) for n in names), default=started)
        lat = [watcher.active[n] - created[n] for n in names if n in watcher.active]
        out = {"per_s": count / (last - started), "to_active": _dist(lat), "active": len(lat)}
        if meter is not None:
            time.sleep(SETTLE_S)
            out.update(meter.stop(count))
        return out, names

    def set_expiry(self, names: list[str], at: Callable[[int], datetime]) -> dict[str, float]:
        """Move each grant's expiresAt (as the operator would have written it) to `at(i)`."""
        api = CustomObjectsApi(self.operator_client)
        due: dict[str, float] = {}
        self.late_patches = 0

        def one(index: int) -> None:
            when = at(index).replace(microsecond=0)
            api.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                "agents",
                "accessrequests",
                names[index],
                {"status": {"expiresAt": format_time(when)}},
            )
            due[names[index]] = when.timestamp()
            if _now() > due[names[index]]:
                self.late_patches += 1  # the lag would count the bench's own patching

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(one, range(len(names))))
        return due

    def own_expiry_lag(self, count: int, watcher: Watcher) -> dict[str, Any]:
        """`count` grants due together whose expiresAt is the one the operator wrote: each is filed
        for the time left until one instant, so nothing but the operator writes their status (a
        patch from outside is a foreign event, which hid that the operator's own echo was not
        observed and its grants' bindings waited for their passes)."""
        names = self.names(count)
        target = _now() + _lead(count).total_seconds() + count / 10
        self.file(names, lambda _: f"{max(1, round(target - _now()))}s")
        _wait(lambda: all(n in watcher.expires for n in names), timeout=max(120, count))
        self.late_patches = 0  # nothing patched: expiresAt is the operator's own
        return self.expiry_lag(names, {n: watcher.expires[n] for n in names if n in watcher.expires}, watcher)

    def natural_expiry_lag(self, count: int, watcher: Watcher, *, together: bool) -> dict[str, Any]:
        """`count` grants filed evenly over NATURAL_FILING_S (activations spread, as users file them)
        that expire on their own, nothing patched: each `NATURAL_DURATION_S` long (expiries spread
        like the activations), or (`together`) each for the time left until one instant, so that all
        expire in the same second. `expires_within_s` says how close together they really fell."""
        names = self.names(count)
        end = _now() + NATURAL_FILING_S + NATURAL_DURATION_S

        def duration(_: int) -> str:
            return f"{max(1, round(end - _now()))}s" if together else f"{NATURAL_DURATION_S}s"

        self.file(names, duration, over=NATURAL_FILING_S)
        _wait(lambda: all(n in watcher.expires for n in names), timeout=max(120, count))
        due = {n: watcher.expires[n] for n in names if n in watcher.expires}
        self.late_patches = 0
        lag = self.expiry_lag(names, due, watcher)
        # Whether the late ones fell due while grants were still being activated (their passes then
        # share the operator with the backlog) or after the last activation.
        last_active = max((watcher.active[n] for n in names if n in watcher.active), default=0.0)
        late = [n for n in names if n in watcher.deleted and watcher.deleted[n] - due[n] > 1.0]
        return {
            **lag,
            "expires_within_s": max(due.values()) - min(due.values()) if due else float("nan"),
            "late_over_1s": len(late),
            "late_due_while_activating": sum(1 for n in late if due[n] < last_active),
        }

    def expiry_lag(self, names: list[str], due: dict[str, float], watcher: Watcher) -> dict[str, Any]:
        _wait(lambda: all(n in watcher.deleted for n in names), timeout=max(due.values()) - _now() + 120)
        lags = [watcher.deleted[n] - due[n] for n in names if n in watcher.deleted]
        return {**_dist(lags), "ended": len(lags), "late_patches": self.late_patches}

    def revoke_lag(self, names: list[str], watcher: Watcher) -> dict[str, Any]:
        asked: dict[str, float] = {}
        admin = self.env.admin

        def one(name: str) -> None:
            asked[name] = _now()
            self.env.annotate_request("agents", name, {REVOKE_ANNOTATION: "INC-1 bench"}, client=admin)

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(one, names))
        _wait(lambda: all(n in watcher.deleted for n in names), timeout=120)
        return _dist([watcher.deleted[n] - asked[n] for n in names if n in watcher.deleted])

    def plant_expired(self, count: int, *, prefix: str) -> None:
        """Grant objects whose window closed while no operator ran (sealed as the operator's)."""
        rbac = RbacAuthorizationV1Api(self.env.admin)
        past = format_time(datetime.now(UTC) - timedelta(minutes=1))

        def one(index: int) -> None:
            body = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {
                    "name": f"{prefix}-{index}",
                    "namespace": "payments",
                    "annotations": {
                        EXPIRES_AT_ANNOTATION: past,
                        REQUEST_ANNOTATION: f"agents/{prefix}-{index}",
                    },
                },
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "jit-restart-checkout",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "bench-agent", "namespace": "agents"}],
            }
            body = sealed(
                body, key=self.env.receipt_key, cluster="in-cluster", request_uid=f"uid-{prefix}-{index}"
            )
            rbac.create_namespaced_role_binding("payments", body)

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(one, range(count)))

    def startup_sweep(self, count: int, workdir: Path) -> dict[str, Any]:
        """`count` bindings whose window closed while the operator was down: start it, time until gone.

        The figure includes the operator's own start (a Python process, kopf): `startup_s`, an
        operator started with nothing to sweep until its webhook server listens, says how much."""
        started = _now()
        empty = OperatorProcess(
            self.env, workdir, identity="bench-empty", leader_elect=False, webhooks=True
        ).start()
        startup = _now() - started
        empty.stop()
        self.plant_expired(count, prefix="sweep")
        started = _now()
        operator = OperatorProcess(
            self.env, workdir, identity="bench-sweep", leader_elect=False, webhooks=True
        ).start()
        try:
            # Only the planted ones: a grant still live from an earlier part of the run is not stale
            # (counting it made this figure the 60 s timeout: the "64 s at 100" of an earlier run).
            _wait(lambda: self.managed_bindings("sweep-") == 0, timeout=max(60, count / 5))
            left = self.managed_bindings("sweep-")
            return {"sweep_s": _now() - started, "sweep_left": left, "startup_s": startup}
        finally:
            operator.stop()

    def sweep_in_process(self, count: int) -> dict[str, Any]:
        """The sweep alone: `sweep_all` as the operator runs it at start-up (its settings, its
        ServiceAccount, its audit trail), timed in this process without the operator's own start."""
        self.plant_expired(count, prefix="sweep-alone")
        runtime = self.env._runtime_factory()

        # Its log lines go to a file, as the operator process's do, not over the table on stderr.
        sweep_log = logging.getLogger("jitgrant.sweep")
        handler = logging.FileHandler(self.workdir / "sweep-alone.log")
        sweep_log.addHandler(handler)
        sweep_log.propagate = False

        async def run() -> tuple[float, int]:
            await runtime.audit.start()
            try:
                started = time.perf_counter()
                removed = await sweep_all(runtime)
                return time.perf_counter() - started, removed
            finally:
                await runtime.audit.close()

        try:
            elapsed, removed = asyncio.run(run())
        finally:
            runtime.close()
            sweep_log.removeHandler(handler)
            sweep_log.propagate = True
            handler.close()
        return {"sweep_alone_s": elapsed, "sweep_alone_removed": removed}

    def managed_bindings(self, prefix: str = "") -> int:
        """The operator's bindings in payments (with `prefix`: only those, e.g. the planted ones)."""
        rbac = RbacAuthorizationV1Api(self.env.admin)
        items = rbac.list_namespaced_role_binding(
            "payments", label_selector="app.kubernetes.io/managed-by=jitgrant"
        ).items
        return sum(1 for item in items if item.metadata.name.startswith(prefix))


def _wait(condition: Callable[[], bool], *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


class ServerUnavailable(RuntimeError):
    """The real control plane's binaries are not built (`make kube`)."""


def real_bin_dir() -> Path:
    """Where `make kube` left etcd and kube-apiserver; never builds them (that takes tens of minutes)."""
    from jitgrant_testing.controlplane import cached_binaries

    found = cached_binaries()
    if found is None:
        raise ServerUnavailable(
            "no kube-apiserver binaries: run `make kube` (needs Go) or set JITGRANT_KUBE_BIN; "
            "nothing was measured on the real API server"
        )
    return found


@contextmanager
def _server(server: str) -> Iterator[Environment]:
    """The API server with the operator's RBAC and webhooks installed and a harness operator running."""
    sweep = timedelta(seconds=30)
    if server == "embedded":
        with Environment(sweep_interval=sweep) as env:
            yield env
    elif server == "real":
        from jitgrant_testing.controlplane import ControlPlane
        from jitgrant_testing.realenv import RealEnvironment

        # The environment stops first (it removes the webhook configurations), then the server.
        with (
            ControlPlane(real_bin_dir()) as plane,
            RealEnvironment(plane=plane, sweep_interval=sweep) as real,
        ):
            yield real
    else:
        raise ValueError(f"server must be one of {SERVERS}, not {server!r}")


def server_version(env: Environment) -> str:
    """What the server says at /version (`git_version`), e.g. v1.36.3."""
    try:
        return str(VersionApi(env.admin).get_code().git_version)
    except Exception as exc:  # the figures matter more than the label
        return f"unknown ({type(exc).__name__})"


@contextmanager
def environment(server: str = "embedded") -> Iterator[tuple[Environment, Path]]:
    workdir = Path(tempfile.mkdtemp(prefix="jitgrant-bench-"))
    try:
        with _server(server) as env:
            env.apply([CLUSTER_ROLE, POLICY])  # through the webhooks of the harness's operator
            env.allow_to_request("agents", service_account="bench-agent")
            env.operator.stop()  # the operator runs as a process of its own below
            # As the chart's Secret holds it: text. `jitgrant run` trims whitespace from the file, so
            # random bytes were sometimes read back shorter than 32 and the operator refused to start.
            env.receipt_key = secrets.token_hex(32).encode()
            yield env, workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _phase(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def measure_sweep(n2: int, server: str = "embedded") -> dict[str, Any]:
    """Only the start-up sweep of n2 expired bindings, next to its floor (`--only sweep`)."""
    out: dict[str, Any] = {"n1": 0, "n2": n2, "threads": THREADS, "floor": {}, "jitgrant": {}}
    with environment(server) as (env, workdir):
        out.update(server=server, server_version=server_version(env))
        bench = Bench(env, workdir)
        _phase("floor: sweep")
        out["floor"]["sweep_s"] = bench.floor_sweep(n2)
        _phase("jitgrant: sweep alone")
        out["jitgrant"].update(bench.sweep_in_process(n2))
        _phase("jitgrant: start-up sweep")
        out["jitgrant"].update(bench.startup_sweep(n2, workdir))
    return out


@contextmanager
def _granted(count: int, server: str, out: dict[str, Any]) -> Iterator[tuple[Bench, Watcher, list[str]]]:
    """An operator process with `count` grants made Active (throughput recorded in `out`)."""
    with environment(server) as (env, workdir):
        out.update(server=server, server_version=server_version(env))
        bench = Bench(env, workdir)
        watcher = Watcher(env).start()
        operator = OperatorProcess(env, workdir, identity="bench", leader_elect=False, webhooks=True).start()
        try:
            time.sleep(2)
            _phase(f"jitgrant: throughput {count}")
            run, names = bench.throughput(count, watcher, operator)
            out["jitgrant"][f"throughput_{count}"] = run
            yield bench, watcher, names
        finally:
            operator.stop()
            watcher.stop()


def measure_revoke(n1: int, server: str = "embedded") -> dict[str, Any]:
    """Only the revoke lag of n1 active grants (`--only revoke`); there is no floor for it."""
    out: dict[str, Any] = {"n1": n1, "n2": 0, "threads": THREADS, "floor": {}, "jitgrant": {}}
    with _granted(n1, server, out) as (bench, watcher, names):
        _phase("jitgrant: revoke")
        time.sleep(REVOKE_SETTLE_S)
        out["jitgrant"]["revoke_lag_s"] = bench.revoke_lag(names, watcher)
    return out


def measure_expiry(n2: int, server: str = "embedded") -> dict[str, Any]:
    """Only the expiry lag of n2 grants due in the same second (expiresAt patched from outside),
    then of n2 more due together whose expiresAt the operator wrote (`--only expiry`); no floor."""
    out: dict[str, Any] = {"n1": 0, "n2": n2, "threads": THREADS, "floor": {}, "jitgrant": {}}
    with _granted(n2, server, out) as (bench, watcher, names):
        _phase("jitgrant: same-second expiry")
        same = datetime.now(UTC) + _lead(n2)
        due = bench.set_expiry(names, lambda _: same)
        out["jitgrant"]["expiry_lag_same_second_s"] = bench.expiry_lag(names, due, watcher)
        _phase("jitgrant: own expiry")
        out["jitgrant"]["expiry_lag_own_s"] = bench.own_expiry_lag(n2, watcher)
    return out


def natural_expiry(bench: Bench, count: int, watcher: Watcher, out: dict[str, Any]) -> None:
    _phase(f"jitgrant: natural expiry, spread ({count} filed over {NATURAL_FILING_S} s)")
    out["jitgrant"]["expiry_lag_natural_spread_s"] = bench.natural_expiry_lag(count, watcher, together=False)
    _phase(f"jitgrant: natural expiry, same second ({count} filed over {NATURAL_FILING_S} s)")
    out["jitgrant"]["expiry_lag_natural_same_s"] = bench.natural_expiry_lag(count, watcher, together=True)


def measure_natural_expiry(n2: int, server: str = "embedded") -> dict[str, Any]:
    """Only the natural expiry lags (`--only natural-expiry`): grants that activate and expire on
    their own, nothing patched; no floor (a floor deletes a binding at a time it already knows)."""
    out: dict[str, Any] = {"n1": 0, "n2": n2, "threads": THREADS, "floor": {}, "jitgrant": {}}
    with environment(server) as (env, workdir):
        out.update(server=server, server_version=server_version(env))
        bench = Bench(env, workdir)
        watcher = Watcher(env).start()
        operator = OperatorProcess(env, workdir, identity="bench", leader_elect=False, webhooks=True).start()
        try:
            time.sleep(2)
            natural_expiry(bench, n2, watcher, out)
        finally:
            operator.stop()
            watcher.stop()
    return out


def measure_throughput(n1: int, n2: int, server: str = "embedded") -> dict[str, Any]:
    """Only throughput at n1 and n2, with CPU and API calls per grant, floor and jitgrant
    (`--only throughput`)."""
    out: dict[str, Any] = {"n1": n1, "n2": n2, "threads": THREADS, "floor": {}, "jitgrant": {}}
    with environment(server) as (env, workdir):
        out.update(server=server, server_version=server_version(env))
        bench = Bench(env, workdir)
        watcher = Watcher(env).start()
        try:
            _phase("floor: throughput")
            hold_lease_elsewhere(env)
            standby = OperatorProcess(
                env, workdir, identity="bench-standby", leader_elect=True, webhooks=True
            ).start()
            try:
                for n in (n1, n2):
                    out["floor"][f"throughput_{n}"] = bench.floor_throughput(n, watcher, standby)
            finally:
                standby.stop()
            release_lease(env)
            bench.remove_floor_bindings()
            operator = OperatorProcess(
                env, workdir, identity="bench", leader_elect=False, webhooks=True
            ).start()
            try:
                time.sleep(2)
                for n in (n1, n2):
                    _phase(f"jitgrant: throughput {n}")
                    out["jitgrant"][f"throughput_{n}"], _ = bench.throughput(n, watcher, operator)
            finally:
                operator.stop()
        finally:
            watcher.stop()
    return out


def measure(n1: int, n2: int, server: str = "embedded") -> dict[str, Any]:
    out: dict[str, Any] = {"n1": n1, "n2": n2, "threads": THREADS}
    with environment(server) as (env, workdir):
        out.update(server=server, server_version=server_version(env))
        bench = Bench(env, workdir)
        watcher = Watcher(env).start()
        try:
            # The floor: webhooks served by a replica that never leads; the client does the rest.
            _phase("floor: throughput")
            hold_lease_elsewhere(env)
            standby = OperatorProcess(
                env, workdir, identity="bench-standby", leader_elect=True, webhooks=True
            ).start()
            try:
                out["floor"] = {
                    f"throughput_{n}": bench.floor_throughput(n, watcher, standby) for n in (n1, n2)
                }
            finally:
                standby.stop()
            release_lease(env)
            bench.remove_floor_bindings()
            _phase("floor: sweep")
            out["floor"]["sweep_s"] = bench.floor_sweep(n2)

            operator = OperatorProcess(
                env, workdir, identity="bench", leader_elect=False, webhooks=True
            ).start()
            try:
                time.sleep(2)
                rss = {"0": operator.rss_mb()}
                _phase("jitgrant: throughput n1")
                run1, names1 = bench.throughput(n1, watcher, operator)
                rss[str(n1)] = operator.rss_mb()
                _phase("jitgrant: throughput n2")
                run2, names2 = bench.throughput(n2, watcher, operator)
                rss[str(n1 + n2)] = operator.rss_mb()
                out["jitgrant"] = {f"throughput_{n1}": run1, f"throughput_{n2}": run2}
                # A new request while n1+n2 grants are live: unaffected by their number?
                single, _ = bench.throughput(1, watcher)
                out["jitgrant"]["single_to_active_with_live_s"] = single["to_active"]["p50"]
                _phase("jitgrant: revoke")
                time.sleep(REVOKE_SETTLE_S)
                out["jitgrant"]["revoke_lag_s"] = bench.revoke_lag(names1, watcher)
                # n2 grants due in the same second, once every expiresAt is written (the bench writes
                # them through the webhooks, ~30/s: at 1,000 a 10 s lead made the lag the bench's).
                same = datetime.now(UTC) + _lead(n2)
                _phase("jitgrant: same-second expiry")
                due = bench.set_expiry(names2, lambda _: same)
                out["jitgrant"]["expiry_lag_same_second_s"] = bench.expiry_lag(names2, due, watcher)
                # n2 more, due spread over 40 s.
                _phase("jitgrant: spread expiry")
                _, names3 = bench.throughput(n2, watcher)
                start = datetime.now(UTC) + _lead(n2)
                due = bench.set_expiry(names3, lambda i: start + timedelta(seconds=40 * i / max(1, n2)))
                out["jitgrant"]["expiry_lag_spread_40s_s"] = bench.expiry_lag(names3, due, watcher)
                _phase("jitgrant: own expiry")
                out["jitgrant"]["expiry_lag_own_s"] = bench.own_expiry_lag(n2, watcher)
                natural_expiry(bench, n2, watcher, out)
                time.sleep(3)
                rss["after_churn"] = operator.rss_mb()
                out["jitgrant"]["rss_mb"] = rss
            finally:
                operator.stop()
            _phase("jitgrant: sweep alone")
            out["jitgrant"].update(bench.sweep_in_process(n2))
            _phase("jitgrant: start-up sweep")
            out["jitgrant"].update(bench.startup_sweep(n2, workdir))
        finally:
            watcher.stop()
    return out


def table(r: dict[str, Any]) -> str:
    n1, n2 = r["n1"], r["n2"]
    f, j = r["floor"], r["jitgrant"]
    rows: list[tuple[str, str, str, str]] = []

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x" if b else "-"

    # `--only` runs part of the benchmark: rows whose figures were not measured are left out.
    for n in (n1, n2):
        if f"throughput_{n}" not in f:
            continue
        fl, jg = f[f"throughput_{n}"], j[f"throughput_{n}"]
        rows.append(
            (
                f"grants/s, {n} filed at once",
                f"{fl['per_s']:.1f}",
                f"{jg['per_s']:.1f}",
                ratio(fl["per_s"], jg["per_s"]),
            )
        )
        for q in ("p50", "p95", "p99"):
            rows.append(
                (
                    f"create->Active {q}, {n} at once (s)",
                    f"{fl['to_active'][q]:.2f}",
                    f"{jg['to_active'][q]:.2f}",
                    ratio(jg["to_active"][q], fl["to_active"][q]),
                )
            )
        for name, fcpu in fl.get("cpu_s_per_1000", {}).items():
            jcpu = jg.get("cpu_s_per_1000", {}).get(name, float("nan"))
            rows.append(
                (
                    f"CPU s per 1,000 grants, {name}, {n} at once",
                    f"{fcpu:.1f}",
                    f"{jcpu:.1f}",
                    ratio(jcpu, fcpu),
                )
            )
        if "calls_per_grant" in fl and "calls_per_grant" in jg:
            fc, jc = fl["calls_per_grant"], jg["calls_per_grant"]
            rows.append(
                (
                    f"API calls per grant, operator/agent/other, {n} at once",
                    " / ".join(f"{fc[k]:.1f}" for k in ("operator", "agent", "other")),
                    " / ".join(f"{jc[k]:.1f}" for k in ("operator", "agent", "other")),
                    ratio(sum(jc.values()), sum(fc.values())),
                )
            )
            kinds = jg.get("operator_calls_per_grant", {})
            rows.append(
                (
                    f"  the operator's, by verb and resource, {n} at once",
                    "-",
                    "-",
                    ", ".join(f"{kind} {count:g}" for kind, count in kinds.items() if count >= 0.05),
                )
            )
            conflicts = jg.get("operator_conflicts_per_grant", {})
            rows.append(
                (
                    f"  of those answered 409 Conflict, {n} at once",
                    "-",
                    "-",
                    ", ".join(f"{kind} {count:g}" for kind, count in conflicts.items()) or "none",
                )
            )
    if "single_to_active_with_live_s" in j:
        rows.append(
            (
                f"create->Active, 1 with {n1 + n2} live (s)",
                "-",
                f"{j['single_to_active_with_live_s']:.2f}",
                "-",
            )
        )
    for key, label in (
        ("expiry_lag_spread_40s_s", f"expiry lag, {n2} spread over 40 s"),
        ("expiry_lag_same_second_s", f"expiry lag, {n2} in the same second"),
        ("expiry_lag_own_s", f"expiry lag, {n2} due together, expiresAt the operator's"),
        (
            "expiry_lag_natural_spread_s",
            f"natural expiry lag, {n2} filed over {NATURAL_FILING_S} s, {NATURAL_DURATION_S} s each",
        ),
        (
            "expiry_lag_natural_same_s",
            f"natural expiry lag, {n2} filed over {NATURAL_FILING_S} s, due together",
        ),
    ):
        if key not in j:
            continue
        e = j[key]
        rows.append(
            (
                f"{label} p50/p99/max (s)",
                "-",
                f"{e['p50']:.2f} / {e['p99']:.2f} / {e['max']:.2f}",
                f"{e['ended']}/{n2} ended"
                + (f", {e['late_patches']} set late" if e.get("late_patches") else "")
                + (f", due within {e['expires_within_s']:.0f} s" if "expires_within_s" in e else "")
                + (
                    f", {e['late_over_1s']} over 1 s late ({e['late_due_while_activating']} due while"
                    " others were still activating)"
                    if e.get("late_over_1s")
                    else ""
                ),
            )
        )
    if "revoke_lag_s" in j:
        rv = j["revoke_lag_s"]
        rows.append(
            (
                f"revoke lag, {n1} p50/p99/max (s)",
                "-",
                f"{rv['p50']:.2f} / {rv['p99']:.2f} / {rv['max']:.2f}",
                "-",
            )
        )
    if "rss_mb" in j:
        rows.append(
            (
                f"operator RSS 0 / {n1} / {n1 + n2} active / after churn (MB)",
                "-",
                " / ".join(f"{v:.0f}" for v in j["rss_mb"].values()),
                "-",
            )
        )
    if "sweep_alone_s" in j:
        rows.append(
            (
                f"sweep of {n2} expired bindings, in process (s)",
                f"{f['sweep_s']:.1f}",
                f"{j['sweep_alone_s']:.1f}",
                ratio(j["sweep_alone_s"], f["sweep_s"]),
            )
        )
    if "sweep_s" in j:
        rows.append(
            (
                f"start-up sweep of {n2} expired bindings (s)",
                f"{f['sweep_s']:.1f}",
                f"{j['sweep_s']:.1f}" + (f" ({j['sweep_left']} left)" if j.get("sweep_left") else ""),
                ratio(j["sweep_s"], f["sweep_s"]),
            )
        )
        rows.append(
            ("  of which the operator's start, nothing to sweep (s)", "-", f"{j['startup_s']:.1f}", "-")
        )
    width = max(len(row[0]) for row in rows)
    lines = [f"{'what':<{width}}  {'floor':>10}  {'jitgrant':>22}  ratio", "-" * (width + 46)]
    lines += [f"{a:<{width}}  {b:>10}  {c:>22}  {d}" for a, b, c, d in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N1=20, N2=100 (a few minutes)")
    parser.add_argument("--full", action="store_true", help="N1=100, N2=1,000, as issue 16 measures")
    parser.add_argument("--n1", type=int, default=None)
    parser.add_argument("--n2", type=int, default=None)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    parser.add_argument(
        "--only",
        choices=("sweep", "revoke", "expiry", "natural-expiry", "throughput"),
        help="run one part: the start-up sweep (N2), revoke lag (N1), N2 expiries due together, N2 "
        "grants that activate and expire on their own, or throughput with CPU and API calls (N1, N2)",
    )
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default="embedded",
        help="the embedded API server, or the real kube-apiserver `make kube` built (default: embedded)",
    )
    args = parser.parse_args()
    if args.server == "real":
        try:
            real_bin_dir()
        except ServerUnavailable as exc:
            print(f"!!! bench/grants.py --server real SKIPPED: {exc} !!!", file=sys.stderr, flush=True)
            sys.exit(EXIT_NO_SERVER)
    # The default keeps `make bench` to minutes on two cores; --full is the scale.
    n1 = args.n1 or (20 if args.quick else 100)
    n2 = args.n2 or (100 if args.quick else 1000 if args.full else 300)
    started = time.monotonic()
    if args.only == "sweep":
        result = measure_sweep(n2, args.server)
    elif args.only == "revoke":
        result = measure_revoke(n1, args.server)
    elif args.only == "expiry":
        result = measure_expiry(n2, args.server)
    elif args.only == "natural-expiry":
        result = measure_natural_expiry(n2, args.server)
    elif args.only == "throughput":
        result = measure_throughput(n1, n2, args.server)
    else:
        result = measure(n1, n2, args.server)
    result["wall_s"] = time.monotonic() - started
    where = (
        f"real kube-apiserver {result['server_version']} + etcd"
        if args.server == "real"
        else "embedded cluster"
    )
    print(f"== {where}")
    print(table(result))
    print(f"({where}, {os.cpu_count()} CPUs, {result['wall_s']:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
