"""`make e2e`: the operator image and the chart on a real node, an agent that is a Pod (issue 23).

A one-node cluster (jitgrant_testing/node.py) runs the image `make image` built (imported with
`ctr images import`, no registry), installed with the chart through the Helm v4 SDK with two
replicas; the API server calls the webhooks through their Service with the chart's generated
certificate. Then, each step timed and checked (no orphaned RoleBinding, every grant ended on time,
the audit trail of every running replica verifies):

  agent-pod      a Pod with its own projected token runs `jitgrant request --wait`, uses the grant,
                 is refused outside it, releases it; the binding is gone
  approval       the agent waits; a human (static-token user `approver`) approves with the CLI;
                 the grant expires on its own
  leader-delete  a burst of grants; the leader pod is deleted while they run: failover time and the
                 expiry lag of the grants that end meanwhile
  sigkill        SIGKILL the leader's operator container (ctr): restart, takeover, expiry lag
  apiserver-down the API server killed for APISERVER_DOWN seconds while grants are due to end: the
                 bindings are gone within EXPIRY_SLACK of its return
  helm-upgrade   a rolling `helm upgrade` while grants are live
  (footprint-N)  opt-in (JITGRANT_E2E_FOOTPRINT_GRANTS=N): memory and CPU per replica with N live grants
  helm-uninstall `helm uninstall` while grants are live: revoked, nothing blocks the namespace
                 deletion, no Lease left
  host-network   hostNetwork with one replica on the one node, free ports: a grant through the webhook
                 on the node's address, an in-place rolling upgrade, an uninstall

Prints a table (step, seconds, result) and exits 1 when a step failed. Needs root (the node);
without it, or without the image, it says so in one line and exits 3.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import helm_python as helm
import urllib3
from kubernetes.client import (
    ApiClient,
    Configuration,
    CoordinationV1Api,
    CoreV1Api,
    CustomObjectsApi,
    RbacAuthorizationV1Api,
)
from kubernetes.client.exceptions import ApiException

from jitgrant_testing.node import Node, NodeError, NodeUnavailable

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "jitgrant"
RELEASE, NAMESPACE = "jitgrant", "jitgrant-system"
AGENTS, TARGET = "agents", "payments"
GROUP, VERSION = "jitgrant.dev", "v1alpha1"
ROLE = "jit-read-logs"  # a chart example role: list pods (and logs) in the target namespace
TRAIL = "/var/lib/jitgrant/spool/e2e-trail.jsonl"
APISERVER_DOWN = float(os.environ.get("JITGRANT_E2E_APISERVER_DOWN", "60"))
BURST_GROUP = "e2e:burst"  # the requesters of the bursts, one user per request
EXPIRY_SLACK = 5.0
# JITGRANT_E2E_FOOTPRINT_GRANTS=1000 adds a step measuring each replica with that many live grants.
FOOTPRINT_GRANTS = int(os.environ.get("JITGRANT_E2E_FOOTPRINT_GRANTS", "0"))
# JITGRANT_E2E_STEPS=apiserver_down,helm_uninstall runs only those after the install (to chase one).
STEPS = (
    set(os.environ["JITGRANT_E2E_STEPS"].split(",")) if os.environ.get("JITGRANT_E2E_STEPS") else None
)  # a grant "ended on time" when its binding is gone within this after expiresAt

AGENT_SCRIPT = r"""
import json, subprocess, sys, time
from kubernetes import client, config
config.load_incluster_config()
core = client.CoreV1Api()
name, policy, target, duration, mode = sys.argv[1:6]
def can(call):
    try:
        call()
        return "allowed"
    except client.ApiException as err:
        return f"refused {err.status}"
out = {"before": can(lambda: core.list_namespaced_pod(target))}
start = time.monotonic()
done = subprocess.run(["jitgrant", "request", "--policy", policy, "--target-namespace", target,
    "--cluster-role", "jit-read-logs", "--for", duration, "--reason", "INC-23 e2e", "--name", name,
    "--wait", "--wait-timeout", "180s"], capture_output=True, text=True)
out["request_rc"] = done.returncode
out["request_seconds"] = round(time.monotonic() - start, 2)
out["request_output"] = (done.stdout + done.stderr)[-600:]
out["granted"] = can(lambda: core.list_namespaced_pod(target))
out["outside_secrets"] = can(lambda: core.list_namespaced_secret(target))
out["outside_namespace"] = can(lambda: core.list_namespaced_pod("default"))
if mode == "release":
    released = subprocess.run(["jitgrant", "release", name, "--reason", "done"],
        capture_output=True, text=True)
    out["release_rc"] = released.returncode
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and can(lambda: core.list_namespaced_pod(target)) == "allowed":
        time.sleep(0.2)
    out["after_release"] = can(lambda: core.list_namespaced_pod(target))
print("E2E-RESULT " + json.dumps(out), flush=True)
"""


@dataclass
class Row:
    step: str
    seconds: float
    result: str
    ok: bool


@dataclass
class E2E:
    node: Node
    api: ApiClient
    config: helm.Config
    image: str
    rows: list[Row] = field(default_factory=list)

    # -- helpers -------------------------------------------------------------------------------

    @property
    def core(self) -> CoreV1Api:
        return CoreV1Api(self.api)

    @property
    def custom(self) -> CustomObjectsApi:
        return CustomObjectsApi(self.api)

    def values(self, **extra: Any) -> dict[str, Any]:
        repository, tag = self.image.rsplit(":", 1)
        values: dict[str, Any] = {
            "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
            "replicaCount": 2,
            "webhook": {"certManager": {"enabled": False}},
            "audit": {
                "config": {
                    "acceptance": "spool",
                    "sinks": [{"type": "file", "name": "e2e-file", "path": TRAIL}],
                }
            },
            # No cluster DNS and no NetworkPolicy enforcement on this node's bridge CNI.
            "networkPolicy": {"enabled": False},
        }
        values.update(extra)
        return values

    def request(self, name: str, namespace: str = AGENTS) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "accessrequests", name
        )
        return obj

    def phase(self, name: str, namespace: str = AGENTS) -> str:
        try:
            return str((self.request(name, namespace).get("status") or {}).get("phase") or "")
        except ApiException as err:
            if err.status == 404:
                return "<gone>"
            raise

    def wait(
        self, what: str, check: Callable[[], bool], timeout: float = 120.0, interval: float = 0.2
    ) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            try:
                if check():
                    return time.monotonic() - start
            except (ApiException, urllib3.exceptions.HTTPError, OSError):
                pass  # not yet (the API server may be restarting)
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")

    def operator_pods(self) -> list[Any]:
        pods = self.core.list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/component=operator")
        return [p for p in pods.items if p.metadata.deletion_timestamp is None]

    def leader(self) -> str:
        for lease in CoordinationV1Api(self.api).list_namespaced_lease(NAMESPACE).items:
            if lease.metadata.name.startswith("jitgrant-replay-"):
                continue
            holder = lease.spec.holder_identity or ""
            if holder:
                return str(holder)
        return ""

    def lease_renewed_after(self, moment: datetime) -> bool:
        lease = CoordinationV1Api(self.api).read_namespaced_lease("jitgrant-leader", NAMESPACE)
        renewed = lease.spec.renew_time
        return bool(lease.spec.holder_identity) and renewed is not None and renewed > moment

    def leader_pod(self) -> str:
        holder = self.leader()
        for pod in self.operator_pods():
            if pod.metadata.name in holder:
                return str(pod.metadata.name)
        raise AssertionError(f"no operator pod holds the Lease (holder {holder!r})")

    def ready_replicas(self) -> int:
        return sum(
            1
            for pod in self.operator_pods()
            if any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
        )

    def file_request(self, name: str, policy: str, duration: str) -> None:
        """Filed as a requester of its own (user `name`, group BURST_GROUP, impersonated by admin):
        one requester has one open request per scope (issue 31), and a burst needs many."""
        with ApiClient(self.api.configuration) as api:
            api.set_default_header("Impersonate-User", f"e2e-{name}")
            api.set_default_header("Impersonate-Group", BURST_GROUP)
            self._file_request(CustomObjectsApi(api), name, policy, duration)

    def _file_request(self, custom: CustomObjectsApi, name: str, policy: str, duration: str) -> None:
        custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            AGENTS,
            "accessrequests",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "AccessRequest",
                "metadata": {"name": name},
                "spec": {
                    "policy": policy,
                    "namespace": TARGET,
                    "clusterRole": ROLE,
                    "duration": duration,
                    "justification": "INC-23 e2e burst",
                },
            },
        )

    def bindings(self) -> set[str]:
        found = RbacAuthorizationV1Api(self.api).list_namespaced_role_binding(TARGET)
        return {b.metadata.name for b in found.items if b.role_ref.name == ROLE}

    def active_bindings(self) -> set[str]:
        """The RoleBindings Active requests hold (any other is an orphan)."""
        names = set()
        for obj in self.custom.list_namespaced_custom_object(GROUP, VERSION, AGENTS, "accessrequests")[
            "items"
        ]:
            status = obj.get("status") or {}
            if status.get("phase") == "Active":
                names.add(((status.get("grant") or {}).get("roleBinding")) or "")
        return names

    def watch_expiries(
        self, names: list[str], timeout: float, *, since: datetime | None = None
    ) -> dict[str, float]:
        """Seconds between each request's expiresAt (or `since`, when later: nothing can end a grant
        before then) and its binding being gone (polled)."""
        expires: dict[str, datetime] = {}
        bound: dict[str, str] = {}
        lag: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(lag) < len(names):
            try:
                current = self.bindings()
                for name in names:
                    if name in lag:
                        continue
                    status = self.request(name).get("status") or {}
                    if name not in expires and status.get("expiresAt"):
                        expires[name] = datetime.fromisoformat(status["expiresAt"].replace("Z", "+00:00"))
                        bound[name] = (status.get("grant") or {}).get("roleBinding") or ""
                    if name in expires and bound.get(name) and bound[name] not in current:
                        due = max(expires[name], since) if since is not None else expires[name]
                        lag[name] = (datetime.now(UTC) - due).total_seconds()
            except (ApiException, OSError):
                pass  # the API server may be down (apiserver-down)
            time.sleep(0.25)
        missing = [n for n in names if n not in lag]
        if missing:
            raise AssertionError(f"grants still bound after {timeout:.0f}s: {missing}")
        return lag

    def audit_verify(self, *, expect_records: bool = True) -> str:
        """`jitgrant audit verify` on every running replica's file trail; '' when all pass."""
        failures = []
        verified = 0
        for pod in self.operator_pods():
            if pod.status.phase != "Running":
                continue
            name = pod.metadata.name
            plane = self.node.plane
            done = subprocess.run(
                [str(plane.binary("kubectl")), "--kubeconfig", str(plane.kubeconfig_path()),
                 "exec", "-n", NAMESPACE, name, "-c", "operator", "--",
                 "jitgrant", "audit", "verify", "--file", TRAIL],
                capture_output=True, text=True, check=False, timeout=60,
            )  # fmt: skip
            output = (done.stdout + done.stderr).strip()
            if done.returncode == 0:
                verified += 1
            elif "No such file" not in output:  # a replica that has recorded nothing has no trail yet
                failures.append(f"{name}: exit {done.returncode}: {output[-300:]}")
        if expect_records and not verified:
            failures.append("no replica has a trail to verify")
        return "; ".join(failures)

    def after_step(self, lags: dict[str, float] | None = None, *, expect_records: bool = True) -> str:
        orphans = self.bindings() - self.active_bindings()
        problems = []
        if orphans:
            problems.append(f"orphaned RoleBindings {sorted(orphans)}")
        audit = self.audit_verify(expect_records=expect_records)
        if audit:
            problems.append(f"audit verify failed: {audit}")
        if lags:
            late = {n: round(v, 1) for n, v in lags.items() if v > EXPIRY_SLACK}
            if late:
                problems.append(f"grants ended late (s): {late}")
        return "; ".join(problems)

    @contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        notes: list[str] = []
        start = time.monotonic()
        print(f"--- {name}", flush=True)
        try:
            yield notes
            ok = not any(note.startswith("FAIL") for note in notes)
        except Exception as err:  # a failed step is a row, and the next steps still run
            traceback.print_exc()
            notes.append(f"FAIL {type(err).__name__}: {str(err)[:300]}")
            ok = False
        row = Row(name, time.monotonic() - start, "; ".join(notes) or "ok", ok)
        self.rows.append(row)
        if not ok or os.environ.get("JITGRANT_E2E_LOGS"):  # JITGRANT_E2E_LOGS=1: after every step
            self.print_operator_logs(since=time.monotonic() - start)
        print(f"--- {name}: {row.seconds:.1f}s {'ok' if ok else 'FAILED'}: {row.result}", flush=True)

    def print_operator_logs(self, since: float) -> None:
        """A failed step's evidence: what each operator container logged meanwhile (stderr)."""
        with contextlib.suppress(Exception):
            for pod in self.operator_pods():
                log = self.node.kubectl(
                    "logs", "-n", NAMESPACE, pod.metadata.name, "-c", "operator",
                    f"--since={int(since) + 5}s", check=False, timeout=30,
                )  # fmt: skip
                print(f"== {pod.metadata.name} (last {int(since) + 5}s)\n{log[-8000:]}", file=sys.stderr)
                restarts = [(c.name, c.restart_count) for c in pod.status.container_statuses or []]
                if any(count for _, count in restarts):
                    previous = self.node.kubectl(
                        "logs", "-n", NAMESPACE, pod.metadata.name, "-c", "operator", "--previous",
                        check=False, timeout=30,
                    )  # fmt: skip
                    print(f"== {pod.metadata.name} restarts {restarts}, before the last:\n{previous[-4000:]}",
                          file=sys.stderr)  # fmt: skip
            # Pods replaced meanwhile (a rollout) are gone with their logs: the events say why.
            events = self.node.kubectl(
                "get", "events", "-n", NAMESPACE, "--sort-by=.lastTimestamp", check=False
            )
            print(f"== events in {NAMESPACE}\n{events[-6000:]}", file=sys.stderr)

    def operator_pids(self) -> dict[str, int]:
        """Each running operator container's main process on this machine (ctr's task list)."""
        tasks = {}
        for line in self.node.ctr("tasks", "ls").splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                tasks[fields[0]] = int(fields[1])
        pids = {}
        for pod in self.operator_pods():
            for status in pod.status.container_statuses or []:
                if status.name == "operator" and status.container_id:
                    pid = tasks.get(status.container_id.split("://", 1)[1])
                    if pid:
                        pids[pod.metadata.name] = pid
        return pids

    def footprint(self, seconds: float = 10.0) -> str:
        """Memory (RSS of the container's processes) and CPU (share of one core over `seconds`) per
        replica, read from /proc on this machine: the node is the machine."""
        pids = self.operator_pids()
        before = {name: _cpu_ticks(pid) for name, pid in pids.items()}
        time.sleep(seconds)
        parts = []
        for name, pid in sorted(pids.items()):
            cpu = (_cpu_ticks(pid) - before[name]) / os.sysconf("SC_CLK_TCK") / seconds
            parts.append(f"{_rss_mb(pid):.0f} MB, {cpu * 100:.1f}% CPU")
        return "; ".join(parts)

    def started_to_ready(self) -> list[float]:
        """Per operator pod: seconds from the pod's creation to its Ready condition (1 s resolution)."""
        found = []
        for pod in self.operator_pods():
            for condition in pod.status.conditions or []:
                if condition.type == "Ready" and condition.status == "True":
                    found.append(
                        (condition.last_transition_time - pod.metadata.creation_timestamp).total_seconds()
                    )
        return found

    # -- set-up --------------------------------------------------------------------------------

    def setup_identities(self) -> None:
        for namespace in (AGENTS, TARGET):
            self.core.create_namespace({"metadata": {"name": namespace}})
        self.core.create_namespaced_service_account(AGENTS, {"metadata": {"name": "oncall-agent"}})
        rbac = RbacAuthorizationV1Api(self.api)
        for role, subject in (
            ("jitgrant-requester", {"kind": "ServiceAccount", "name": "oncall-agent", "namespace": AGENTS}),
            (
                "jitgrant-approver",
                {"kind": "User", "name": "approver", "apiGroup": "rbac.authorization.k8s.io"},
            ),
            (
                "jitgrant-requester",
                {"kind": "Group", "name": BURST_GROUP, "apiGroup": "rbac.authorization.k8s.io"},
            ),
        ):
            rbac.create_namespaced_role_binding(
                AGENTS,
                {
                    "metadata": {"name": f"e2e-{role}-{subject['kind'].lower()}"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                    "subjects": [subject],
                },
            )
        agent = {
            "serviceAccounts": [{"namespace": AGENTS, "name": "oncall-agent"}],
            "users": ["admin"],
            "groups": [BURST_GROUP],
        }
        for name, approval in (
            ("e2e-auto", {"required": False}),
            ("e2e-approval", {"required": True, "approvers": {"users": ["approver"]}, "minApprovals": 1}),
        ):
            self.custom.create_cluster_custom_object(
                GROUP,
                VERSION,
                "grantpolicies",
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "GrantPolicy",
                    "metadata": {"name": name},
                    "spec": {
                        "requesters": agent,
                        "target": {"type": "InCluster"},
                        "namespaces": [TARGET],
                        "grants": [{"clusterRole": ROLE}],
                        "maxDuration": "30m",
                        "approval": approval,
                        "justification": {"required": True, "pattern": "^INC-[0-9]+"},
                    },
                },
            )

    def run_agent(self, pod: str, request: str, policy: str, duration: str, mode: str) -> None:
        self.core.create_namespaced_pod(
            AGENTS,
            {
                "metadata": {"name": pod},
                "spec": {
                    "serviceAccountName": "oncall-agent",
                    "restartPolicy": "Never",
                    "enableServiceLinks": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
                    "containers": [
                        {
                            "name": "agent",
                            "image": self.image,
                            "imagePullPolicy": "Never",
                            "command": ["python", "-c", AGENT_SCRIPT],
                            "args": [request, policy, TARGET, duration, mode],
                        }
                    ],
                },
            },
        )

    def agent_result(self, pod: str, timeout: float = 240.0) -> dict[str, Any]:
        self.wait(
            f"agent pod {pod} to finish",
            lambda: self.core.read_namespaced_pod(pod, AGENTS).status.phase in ("Succeeded", "Failed"),
            timeout,
        )
        logs = self.node.kubectl("logs", "-n", AGENTS, pod, timeout=30)
        for line in logs.splitlines():
            if line.startswith("E2E-RESULT "):
                result: dict[str, Any] = json.loads(line.removeprefix("E2E-RESULT "))
                return result
        raise AssertionError(f"agent pod {pod} printed no result:\n{logs[-2000:]}")

    # -- steps ---------------------------------------------------------------------------------

    def install(self) -> None:
        with self.step("helm-install") as notes:
            start = time.monotonic()
            self.config.install(
                str(CHART), RELEASE, self.values(), namespace=NAMESPACE, create_namespace=True,
                timeout=180, wait="watcher",
            )  # fmt: skip
            notes.append(f"installed, 2/2 Ready in {time.monotonic() - start:.1f}s")
            try:
                took = self.wait("a leader", lambda: bool(self.leader()), 60)
            except AssertionError:
                for pod in self.operator_pods():  # why: the operators' own words
                    log = self.node.kubectl("logs", "-n", NAMESPACE, pod.metadata.name, check=False)
                    print(f"== {pod.metadata.name}\n{log[-3000:]}", file=sys.stderr)
                raise
            notes.append(f"leader {self.leader()} after {took:.1f}s")
            errors = []
            for pod in self.operator_pods():
                log = self.node.kubectl("logs", "-n", NAMESPACE, pod.metadata.name, check=False)
                errors += [line for line in log.splitlines() if " ERROR " in line or "[ERROR" in line]
            if errors:
                notes.append(f"FAIL {len(errors)} ERROR line(s) on a fresh install: {errors[0][:200]}")
            else:
                notes.append("no ERROR logged")
            ready = self.started_to_ready()
            notes.append(f"pod created to Ready {', '.join(f'{r:.0f}s' for r in sorted(ready))}")
            notes.append(f"idle per replica: {self.footprint()}")
            problem = self.after_step(expect_records=False)
            if problem:
                notes.append(f"FAIL {problem}")
            self.setup_identities()

    def agent_pod(self) -> None:
        with self.step("agent-pod") as notes:
            self.run_agent("agent-release", "e2e-release", "e2e-auto", "10m", "release")
            out = self.agent_result("agent-release")
            notes.append(
                f"granted in {out['request_seconds']}s; before {out['before']}, granted {out['granted']}, "
                f"secrets {out['outside_secrets']}, other ns {out['outside_namespace']}, "
                f"after release {out.get('after_release')}"
            )
            expected = {
                "request_rc": 0,
                "before": "refused 403",
                "granted": "allowed",
                "outside_secrets": "refused 403",
                "outside_namespace": "refused 403",
                "release_rc": 0,
                "after_release": "refused 403",
            }
            wrong = {k: out.get(k) for k, v in expected.items() if out.get(k) != v}
            if wrong:
                notes.append(f"FAIL {wrong} ({out.get('request_output')})")
            self.wait("the released request's binding gone", lambda: not self.bindings(), 30)
            problem = self.after_step()
            if problem:
                notes.append(f"FAIL {problem}")

    def approval(self) -> None:
        with self.step("approval") as notes:
            self.run_agent("agent-approval", "e2e-approved", "e2e-approval", "20s", "expire")
            self.wait("the request Pending", lambda: self.phase("e2e-approved") == "Pending", 120)
            approver = self.node.plane.kubeconfig_path("approver")
            done = subprocess.run(
                [str(Path(sys.executable).with_name("jitgrant")), "approve", "e2e-approved", "-n", AGENTS,
                 "--kubeconfig", str(approver), "--reason", "INC-23 looks right"],
                capture_output=True, text=True, check=False, timeout=60,
            )  # fmt: skip
            if done.returncode != 0:
                notes.append(f"FAIL approve exited {done.returncode}: {done.stderr[-300:]}")
            out = self.agent_result("agent-approval")
            notes.append(f"approved by `approver`, agent {out['granted']} after {out['request_seconds']}s")
            lag = self.watch_expiries(["e2e-approved"], 90)
            notes.append(f"expired, binding gone {lag['e2e-approved']:+.1f}s after expiresAt")
            problem = self.after_step(lag)
            if problem:
                notes.append(f"FAIL {problem}")

    def burst(self, prefix: str, count: int, duration: str) -> list[str]:
        names = [f"{prefix}-{i}" for i in range(count)]
        for name in names:
            self.file_request(name, "e2e-auto", duration)
        self.wait(f"{count} grants Active", lambda: all(self.phase(n) == "Active" for n in names), 120)
        return names

    def leader_delete(self) -> None:
        with self.step("leader-delete") as notes:
            names = self.burst("burst", 8, "25s")
            old = self.leader_pod()
            start = time.monotonic()
            self.core.delete_namespaced_pod(old, NAMESPACE)
            seen: list[str] = []

            def new_leader() -> bool:
                seen.append(self.leader())
                return bool(seen[-1]) and old not in seen[-1]

            failover = self.wait("a new leader", new_leader, 60)
            notes.append(f"deleted leader {old}; {seen[-1]} leads after {failover:.1f}s")
            lag = self.watch_expiries(names, 120)
            notes.append(f"8 grants: expiry lag max {max(lag.values()):+.1f}s")
            self.wait("2 replicas Ready again", lambda: self.ready_replicas() == 2, 120)
            notes.append(f"2/2 Ready after {time.monotonic() - start:.1f}s")
            problem = self.after_step(lag)
            if problem:
                notes.append(f"FAIL {problem}")

    def sigkill(self) -> None:
        with self.step("sigkill") as notes:
            names = self.burst("kill", 3, "25s")
            pod_name = self.leader_pod()
            pod = self.core.read_namespaced_pod(pod_name, NAMESPACE)
            restarts = pod.status.container_statuses[0].restart_count
            container = pod.status.container_statuses[0].container_id.split("://", 1)[1]
            self.node.ctr("tasks", "kill", "--signal", "SIGKILL", container)
            killed = datetime.now(UTC)  # the API server runs on this machine: one clock
            # The restarted container keeps its pod name (its identity) and may win the Lease back:
            # what counts is how long until some replica renews the Lease again.
            failover = self.wait(
                "a Lease renewed after the SIGKILL", lambda: self.lease_renewed_after(killed), 90
            )
            notes.append(
                f"SIGKILLed {pod_name}'s operator; {self.leader()} renewed the Lease after {failover:.1f}s"
            )
            lag = self.watch_expiries(names, 120)
            notes.append(f"3 grants: expiry lag max {max(lag.values()):+.1f}s")
            self.wait(
                "the killed container restarted and Ready",
                lambda: (
                    (
                        self.core.read_namespaced_pod(pod_name, NAMESPACE)
                        .status.container_statuses[0]
                        .restart_count
                        > restarts
                    )
                    and self.ready_replicas() == 2
                ),
                120,
            )
            notes.append("restarted, 2/2 Ready")
            problem = self.after_step(lag)
            if problem:
                notes.append(f"FAIL {problem}")

    def service_path_answers(self, cluster_ip: str) -> bool:
        """The API server answers through the `kubernetes` Service (kube-proxy's rules, from this
        host): the path every pod, the operator's included, takes to it."""
        # A reachability probe, not a trust decision: no certificate check, and no warning about it.
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        pool = urllib3.PoolManager(cert_reqs="CERT_NONE")
        pool.request("GET", f"https://{cluster_ip}/readyz", timeout=1.0, retries=False)
        return True  # any HTTP answer (401 too): the path is back

    def apiserver_down(self) -> None:
        with self.step("apiserver-down") as notes:
            cluster_ip = self.core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
            names = self.burst("outage", 3, "20s")
            apiserver = self.node.process("kube-apiserver")
            # Killed, as a crash or a lost control plane would stop it. A graceful stop (SIGTERM)
            # also takes its address out of the `kubernetes` Service, and the node's kube-proxy,
            # its own watch broken, puts it back 18-60 s after the API server returns: no pod can
            # reach the API server meanwhile (measured; docs/real-cluster.md).
            assert apiserver.popen is not None
            apiserver.popen.kill()
            apiserver.popen.wait()
            apiserver.popen = None
            stopped = time.monotonic()
            time.sleep(APISERVER_DOWN)
            apiserver.start(self.node.plane.dir)
            self.wait("the API server back", lambda: self.core.list_namespace(limit=1) is not None, 120)
            returned = datetime.now(UTC)
            back = time.monotonic() - stopped
            path = self.wait(
                "the API server through its Service", lambda: self.service_path_answers(cluster_ip), 120
            )
            notes.append(
                f"API server down {back:.0f}s (grants of 20s ended during it), "
                f"reached through its Service {path:.1f}s later"
            )
            # Nothing can end a grant while the API server is down: the lag that counts is from its return.
            after_return = self.watch_expiries(names, 120, since=returned)
            notes.append(f"bindings gone {max(after_return.values()):+.1f}s after the API server returned")
            # Grants made after the outage end on time too, by whichever replica leads now, without a
            # restart (a leader that kept a broken state after the outage left them 35-45 s late).
            later = self.burst("after-outage", 3, "15s")
            lag = self.watch_expiries(later, 120)
            notes.append(f"3 grants made after it: expiry lag max {max(lag.values()):+.1f}s")
            self.wait("2 replicas Ready", lambda: self.ready_replicas() == 2, 180)
            problem = self.after_step({**after_return, **lag})
            if problem:
                notes.append(f"FAIL {problem}")

    @contextmanager
    def following_old_pods(self) -> Iterator[list[str]]:
        """Follows the running operator pods' logs while the step runs, and yields a list for the
        step to append to when it fails: the logs are then printed, because a rollout deletes those
        pods, and their logs, before the step ends (issue 23: the leader that missed expiries)."""
        plane = self.node.plane
        with tempfile.TemporaryDirectory(prefix="jitgrant-e2e-logs-") as folder:
            followers = []
            for pod in self.operator_pods():
                out = (Path(folder) / pod.metadata.name).open("w")
                followers.append((pod.metadata.name, out, subprocess.Popen(
                    [str(plane.binary("kubectl")), "--kubeconfig", str(plane.kubeconfig_path()),
                     "logs", "-f", "-n", NAMESPACE, pod.metadata.name, "-c", "operator", "--since=10s"],
                    stdout=out, stderr=subprocess.STDOUT,
                )))  # fmt: skip
            failed: list[str] = []
            try:
                yield failed
            except BaseException as err:
                failed.append(repr(err))
                raise
            finally:
                for name, out, proc in followers:
                    proc.terminate()
                    proc.wait(10)
                    out.close()
                    if failed:
                        text = (Path(folder) / name).read_text(errors="replace")
                        print(f"== {name} (followed through the step)\n{text[-12000:]}", file=sys.stderr)

    def helm_upgrade(self) -> None:
        with self.step("helm-upgrade") as notes, self.following_old_pods() as failed:
            names = self.burst("upgrade", 3, "40s")
            start = time.monotonic()
            # Watched while the rollout runs, not after it: after an API server outage the controller
            # manager's own watches take up to a minute to reconnect and the rollout 66-84 s, longer
            # than the grants; measured after it, their lag was the rollout's (35-45 s "late", when the
            # old leader had ended them on time: issue 23).
            with ThreadPoolExecutor(1) as pool:
                watching = pool.submit(self.watch_expiries, names, 240)
                self.config.upgrade(
                    str(CHART), RELEASE, self.values(podAnnotations={"e2e/rollout": str(time.time())}),
                    namespace=NAMESPACE, timeout=240, wait="watcher",
                )  # fmt: skip
                rollout = time.monotonic() - start
                lag = watching.result()
            notes.append(f"rolling upgrade (same chart, new pod template) in {rollout:.1f}s")
            notes.append(f"3 live grants: expiry lag max {max(lag.values()):+.1f}s")
            # The replica that ended them may be gone with its trail (an emptyDir) by now, and the new
            # ones may have recorded nothing yet.
            problem = self.after_step(lag, expect_records=False)
            if problem:
                notes.append(f"FAIL {problem}")
                failed.append(problem)

    def footprint_at_load(self) -> None:
        """With FOOTPRINT_GRANTS live grants (opt-in: filing 1,000 takes minutes on two cores):
        memory and CPU per replica, then all released at once."""
        if not FOOTPRINT_GRANTS:
            return
        with self.step(f"footprint-{FOOTPRINT_GRANTS}") as notes:
            names = [f"fp-{i}" for i in range(FOOTPRINT_GRANTS)]
            start = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda n: self.file_request(n, "e2e-auto", "20m"), names))
            filed = time.monotonic() - start

            def active() -> int:
                items = self.custom.list_namespaced_custom_object(GROUP, VERSION, AGENTS, "accessrequests")[
                    "items"
                ]
                return sum(
                    1
                    for o in items
                    if o["metadata"]["name"].startswith("fp-")
                    and (o.get("status") or {}).get("phase") == "Active"
                )

            self.wait(f"{FOOTPRINT_GRANTS} grants Active", lambda: active() == FOOTPRINT_GRANTS, 1200, 2.0)
            notes.append(
                f"{FOOTPRINT_GRANTS} filed in {filed:.0f}s, all Active after {time.monotonic() - start:.0f}s"
            )
            notes.append(f"per replica with them live: {self.footprint()}")
            start = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda n: self.custom.delete_namespaced_custom_object(
                            GROUP, VERSION, AGENTS, "accessrequests", n
                        ),
                        names,
                    )
                )
            self.wait("their bindings gone", lambda: not self.bindings(), 1200, 2.0)
            notes.append(f"deleted (revoked) in {time.monotonic() - start:.0f}s")
            problem = self.after_step()
            if problem:
                notes.append(f"FAIL {problem}")

    def helm_uninstall(self) -> None:
        with self.step("helm-uninstall") as notes:
            names = self.burst("uninstall", 3, "30m")
            start = time.monotonic()
            self.config.uninstall(RELEASE, timeout=300, wait="watcher")
            notes.append(f"uninstalled in {time.monotonic() - start:.1f}s")
            phases = {n: self.phase(n) for n in names}
            if set(phases.values()) != {"Revoked"}:
                notes.append(f"FAIL live grants after uninstall: {phases}")
            if self.bindings():
                notes.append(f"FAIL RoleBindings left: {sorted(self.bindings())}")
            leases = [
                lease.metadata.name
                for lease in CoordinationV1Api(self.api).list_namespaced_lease(NAMESPACE).items
            ]
            if leases:
                notes.append(f"FAIL Leases left in {NAMESPACE}: {leases}")
            self.core.delete_namespace(AGENTS)
            try:
                took = self.wait(f"namespace {AGENTS} deleted", lambda: _gone(self.core, AGENTS), 60)
                notes.append(f"namespace {AGENTS} deleted {took:.1f}s after the request")
            except AssertionError:
                stuck = [
                    (o["metadata"]["name"], o["metadata"].get("finalizers"))
                    for o in self.custom.list_namespaced_custom_object(
                        GROUP, VERSION, AGENTS, "accessrequests"
                    )["items"]
                ]
                notes.append(f"FAIL namespace {AGENTS} stuck Terminating: {stuck[:3]}")

    def host_network(self) -> None:
        """The install EKS users with a custom CNI need: hostNetwork, one replica per node (one node
        here), its three ports on the node's addresses; a grant, a rolling upgrade that replaces the
        pod in place (no spare node needed), and an uninstall that leaves nothing."""
        with self.step("host-network") as notes:
            webhook, metrics, health = _free_ports(3)
            self.core.create_namespace({"metadata": {"name": AGENTS}})
            RbacAuthorizationV1Api(self.api).create_namespaced_role_binding(
                AGENTS,
                {
                    "metadata": {"name": "e2e-burst-requesters"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "jitgrant-requester",
                    },
                    "subjects": [
                        {"kind": "Group", "name": BURST_GROUP, "apiGroup": "rbac.authorization.k8s.io"}
                    ],
                },
            )
            values = self.values(
                replicaCount=1,
                hostNetwork=True,
                webhook={"port": webhook, "certManager": {"enabled": False}},
                metrics={"port": metrics},
                health={"port": health},
            )
            start = time.monotonic()
            self.config.install(
                str(CHART), RELEASE, values, namespace=NAMESPACE, timeout=180, wait="watcher"
            )  # fmt: skip
            pod = self.operator_pods()[0]
            notes.append(
                f"hostNetwork install 1/1 Ready in {time.monotonic() - start:.1f}s "
                f"(pod IP {pod.status.pod_ip}, node IP {pod.status.host_ip}; "
                f"ports {webhook}/{metrics}/{health})"
            )
            if not pod.spec.host_network or pod.status.pod_ip != pod.status.host_ip:
                notes.append("FAIL the operator pod is not on the host network")
            self.wait("a leader", lambda: bool(self.leader()), 60)
            names = self.burst("hostnet", 2, "40s")
            start = time.monotonic()
            self.config.upgrade(
                str(CHART), RELEASE, {**values, "podAnnotations": {"e2e/rollout": str(time.time())}},
                namespace=NAMESPACE, timeout=180, wait="watcher",
            )  # fmt: skip
            notes.append(
                f"rolling upgrade (one pod at a time, no spare node) in {time.monotonic() - start:.1f}s"
            )
            lag = self.watch_expiries(names, 120)
            notes.append(
                f"2 grants through the webhook on the node's port: expiry lag max {max(lag.values()):+.1f}s"
            )
            problem = self.after_step(lag)
            if problem:
                notes.append(f"FAIL {problem}")
            start = time.monotonic()
            self.config.uninstall(RELEASE, timeout=300, wait="watcher")
            leases = [
                lease.metadata.name
                for lease in CoordinationV1Api(self.api).list_namespaced_lease(NAMESPACE).items
            ]
            notes.append(f"uninstalled in {time.monotonic() - start:.1f}s")
            if leases:
                notes.append(f"FAIL Leases left in {NAMESPACE}: {leases}")
            self.core.delete_namespace(AGENTS)
            self.wait(f"namespace {AGENTS} deleted", lambda: _gone(self.core, AGENTS), 60)


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                queue += [int(child) for child in (task / "children").read_text().split()]
    return found


def _rss_mb(pid: int) -> float:
    total = 0
    for member in _tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def _cpu_ticks(pid: int) -> int:
    total = 0
    for member in _tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def _free_ports(count: int) -> list[int]:
    """Ports free on this machine (the node's addresses are the machine's): bound to port 0 at once,
    so the kernel hands out distinct ones."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _gone(core: CoreV1Api, namespace: str) -> bool:
    try:
        core.read_namespace(namespace)
    except ApiException as err:
        return bool(err.status == 404)
    return False


def _leftovers(node: Node) -> str:
    """What the node left on the machine: iptables chains, its bridge (empty when nothing)."""
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    chains = [line for line in saved.splitlines() if line.startswith((":KUBE-", ":CNI-"))]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=False).stdout
    found = []
    if chains:
        found.append(f"FAIL iptables chains left: {chains[:4]}")
    if node.settings.bridge in links:
        found.append(f"FAIL bridge {node.settings.bridge} left")
    return "; ".join(found)


def export_image() -> tuple[str, Path]:
    """The image `make image` built, as a docker-archive for `ctr images import`."""
    env_file = ROOT / "build" / "image" / "image.env"
    if not env_file.exists():
        raise NodeUnavailable(f"{env_file} missing: run `make image` first")
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    image = env["IMAGE"]
    archive = Path(tempfile.mkdtemp(prefix="jitgrant-e2e-image-")) / "image.tar"
    if env.get("ENGINE") == "docker":
        argv = ["docker", "save", "-o", str(archive), image]
    else:
        argv = [
            "buildah",
            "--storage-driver",
            "vfs",
            "push",
            "-q",
            image,
            f"docker-archive:{archive}:{image}",
        ]
    subprocess.run(argv, check=True, capture_output=True, timeout=600)
    return image, archive


def _terminated(signum: int, _frame: object) -> None:
    # CI's `timeout` sends TERM: unwind, so the node is torn down and the table printed.
    raise SystemExit(128 + signum)


def print_table(rows: list[Row], started: float) -> None:
    print("\n=== e2e (issue 23)")
    print(f"{'step':<16} {'time':>8}  result")
    for row in rows:
        print(f"{row.step:<16} {row.seconds:>7.1f}s  {'ok  ' if row.ok else 'FAIL'} {row.result}")
    print(f"{'total':<16} {time.monotonic() - started:>7.1f}s", flush=True)


def main() -> int:
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _terminated)
    try:
        image, archive = export_image()
    except NodeUnavailable as err:
        print(f"e2e: cannot run here: {err}", file=sys.stderr)
        return 3
    node = Node()
    rows: list[Row] = []
    try:
        t = time.monotonic()
        node.start()
        node.import_image(archive)
        rows.append(Row("node-up", time.monotonic() - t, f"node Ready, {image} imported", True))
        configuration = Configuration()
        configuration.host = node.plane.server
        configuration.ssl_ca_cert = str(node.plane.ca_path)
        configuration.api_key = {"authorization": f"Bearer {node.plane.token('admin')}"}
        with (
            ApiClient(configuration) as api,
            helm.Config(kubeconfig_path=node.plane.kubeconfig_path(), namespace=NAMESPACE) as config,
        ):
            run = E2E(node, api, config, image, rows)
            run.install()
            if run.ready_replicas() == 2:  # installed (a logged ERROR fails the row, not the run)
                for step in (
                    run.agent_pod, run.approval, run.leader_delete, run.sigkill,
                    run.apiserver_down, run.helm_upgrade, run.footprint_at_load, run.helm_uninstall,
                    run.host_network,
                ):  # fmt: skip
                    if STEPS is None or step.__name__ in STEPS:
                        step()
    except NodeUnavailable as err:
        print(f"e2e: cannot run here: {err}", file=sys.stderr)
        return 3
    except (NodeError, Exception) as err:
        traceback.print_exc()
        rows.append(Row("setup", 0.0, f"FAIL {err}"[:300], False))
        for name, tail in node.logs().items():
            print(f"== {name}\n{tail}", file=sys.stderr)
    finally:
        t = time.monotonic()
        node.stop()
        left = _leftovers(node)
        rows.append(Row("teardown", time.monotonic() - t, left or "node stopped, nothing left", not left))
        archive.unlink(missing_ok=True)
        archive.parent.rmdir()
        print_table(rows, started)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
