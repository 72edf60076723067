"""`jitgrant activity`'s file source reads a real kube-apiserver's audit log: the RBAC reason of an
allowed call names the binding exactly as upstream writes it, and a refused call is tied to the
identity and window.

The same API server's audit webhook backend posts to `jitgrant activity-receiver` (over HTTPS, with
the bearer token of its webhook kubeconfig), and the file the receiver writes attributes the same
calls, event for event; an API server holding the wrong token is refused and writes nothing there."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from jitgrant.activity.attribution import AttributedCall, Basis, GrantIdentity, Outcome, activity
from jitgrant.activity.sources import AuditLogFiles, Window
from jitgrant_testing.controlplane import AuditWebhook, ControlPlane
from jitgrant_testing.tls import WebhookTLS, generate_webhook_tls

JITGRANT = str(Path(sys.executable).parent / "jitgrant")  # the installed entry point
# What kube-apiserver logs (klog, to its log) for a batch its webhook backend gave up on.
PLUGIN_ERROR = "Error in audit plugin 'webhook'"


def _create_grant(plane: ControlPlane) -> str:
    """A namespace where the RoleBinding `jit-pods` lets `agent` list pods (and nothing else)."""
    name = f"activity-{secrets.token_hex(3)}"
    with config.new_client_from_config(config_file=str(plane.kubeconfig_path("admin"))) as admin:
        core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        rbac.create_namespaced_role(
            name,
            client.V1Role(
                metadata=client.V1ObjectMeta(name="pod-reader"),
                rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"])],
            ),
        )
        rbac.create_namespaced_role_binding(
            name,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="jit-pods"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="Role", name="pod-reader"
                ),
                subjects=[
                    client.RbacV1Subject(kind="User", name="agent", api_group="rbac.authorization.k8s.io")
                ],
            ),
        )
    return name


def _act_as_agent(plane: ControlPlane, namespace: str) -> None:
    """Lists pods (allowed by `jit-pods`), then reads a secret (refused)."""
    with config.new_client_from_config(config_file=str(plane.kubeconfig_path("agent"))) as agent:
        core = client.CoreV1Api(agent)
        deadline = time.monotonic() + 30
        while True:  # the RBAC cache picks the new binding up within a moment
            try:
                core.list_namespaced_pod(namespace)
                break
            except ApiException as exc:
                if exc.status != 403 or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with pytest.raises(ApiException) as refused:
            core.read_namespaced_secret("nope", namespace)
        assert refused.value.status == 403


def _attributed(log: Path, namespace: str, start: datetime) -> list[AttributedCall]:
    grant = GrantIdentity(
        binding_name="jit-pods", binding_namespace=namespace, usernames=frozenset({"agent"}), start=start
    )
    return activity(AuditLogFiles(log).calls(Window(start=start, end=None)), grant)


def _assert_attributed(found: list[AttributedCall], namespace: str) -> None:
    allowed = [item for item in found if item.outcome is Outcome.THIS_GRANT]
    refusals = [item for item in found if item.outcome is Outcome.REFUSED and item.call.resource == "secrets"]
    assert allowed and all(item.basis is Basis.AUTHORIZATION_REASON for item in allowed)
    assert allowed[-1].call.reason == (
        f'RBAC: allowed by RoleBinding "jit-pods/{namespace}" of Role "pod-reader" to User "agent"'
    )
    assert (allowed[-1].call.verb, allowed[-1].call.resource, allowed[-1].call.code) == ("list", "pods", 200)
    [secret] = refusals
    assert (secret.call.verb, secret.call.name, secret.call.code, secret.basis) == (
        "get",
        "nope",
        403,
        Basis.IDENTITY_WINDOW,
    )


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = _create_grant(control_plane)
    yield name
    with config.new_client_from_config(config_file=str(control_plane.kubeconfig_path("admin"))) as admin:
        client.CoreV1Api(admin).delete_namespace(name)


def test_the_file_source_attributes_a_real_api_servers_calls(
    control_plane: ControlPlane, namespace: str
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    _act_as_agent(control_plane, namespace)
    _assert_attributed(_attributed(control_plane.audit_log_path, namespace, start), namespace)


def _rebind_to(plane: ControlPlane, namespace: str, user: str) -> None:
    """The grant ends (its RoleBinding goes), and someone else is bound under the same name."""
    with config.new_client_from_config(config_file=str(plane.kubeconfig_path("admin"))) as admin:
        rbac = client.RbacAuthorizationV1Api(admin)
        rbac.delete_namespaced_role_binding("jit-pods", namespace)
        rbac.create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="jit-pods"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="Role", name="pod-reader"
                ),
                subjects=[
                    client.RbacV1Subject(kind="User", name=user, api_group="rbac.authorization.k8s.io")
                ],
            ),
        )


def test_a_binding_recreated_under_an_ended_grants_name_does_not_lend_it_others_calls(
    control_plane: ControlPlane, namespace: str
) -> None:
    """Issue 20 §7: the RBAC reason names a binding by name alone, and a grant's binding name is
    deterministic. mallory's calls through a same-named binding made after the grant ended carry the
    very reason the grant's did; they are not the grant's."""
    start = datetime.now(UTC) - timedelta(seconds=1)
    _act_as_agent(control_plane, namespace)
    end = datetime.now(UTC)
    time.sleep(6)  # past the clock skew the window allows (DEFAULT_CLOCK_SKEW, 5 s)
    _rebind_to(control_plane, namespace, "mallory")
    with config.new_client_from_config(config_file=str(control_plane.kubeconfig_path("mallory"))) as mallory:
        core, deadline = client.CoreV1Api(mallory), time.monotonic() + 30
        while True:
            try:
                core.list_namespaced_pod(namespace)
                break
            except ApiException as exc:
                if exc.status != 403 or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    grant = GrantIdentity(
        binding_name="jit-pods",
        binding_namespace=namespace,
        usernames=frozenset({"agent"}),
        start=start,
        end=end,
    )
    calls = list(AuditLogFiles(control_plane.audit_log_path).calls(Window(start=start, end=None)))
    reason = f'RBAC: allowed by RoleBinding "jit-pods/{namespace}" of Role "pod-reader" to User "mallory"'
    assert [c for c in calls if c.username == "mallory" and c.reason == reason]  # the log has them...
    found = activity(calls, grant)
    assert [item for item in found if item.call.username != "agent"] == []  # ...the grant does not
    # (The window's clock skew may reach back to another test's calls by `agent`: this namespace only.)
    _assert_attributed([item for item in found if item.call.namespace == namespace], namespace)


# -- the audit webhook backend -----------------------------------------------------------------


@dataclass
class Receiver:
    """A running `jitgrant activity-receiver` process."""

    url: str
    log: Path
    process: subprocess.Popen[str]

    def stop(self) -> str:
        """SIGTERM; returns what it printed (its last line counts the batches and events it took)."""
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=20)
        assert self.process.returncode == 0, err
        return out


@contextmanager
def _receiver(directory: Path, token: str, tls: WebhookTLS) -> Iterator[Receiver]:
    """`jitgrant activity-receiver` over HTTPS on a free loopback port, requiring `token`."""
    token_file = directory / "receiver-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    log = directory / "received" / "audit.log"
    process = subprocess.Popen(
        [
            JITGRANT,
            "activity-receiver",
            *("--audit-log", str(log), "--port", "0", "--token-file", str(token_file)),
            *("--tls-cert", str(tls.certfile), "--tls-key", str(tls.pkeyfile)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        assert line.startswith("receiving audit events on https://127.0.0.1:"), line + process.stderr.read()
        yield Receiver(url=line.split(" on ", 1)[1].split(" ", 1)[0], log=log, process=process)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=20)


def _audit_errors(plane: ControlPlane) -> float:
    """apiserver_audit_error_total: Events an audit backend failed to deliver (absent while none)."""
    request = urllib.request.Request(
        f"{plane.server}/metrics", headers={"Authorization": f"Bearer {plane.token('admin')}"}
    )
    with urllib.request.urlopen(request, timeout=10, context=plane.ssl_context()) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("apiserver_audit_error_total")
    )


def _events(log: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The Events in a log by (auditID, stage): a watch is logged when it starts and when it ends."""
    if not log.exists():
        return {}
    events = (json.loads(line) for line in log.read_text().splitlines() if line.strip())
    return {(event["auditID"], event["stage"]): event for event in events}


@dataclass
class Posting:
    plane: ControlPlane
    receiver: Receiver


@pytest.fixture(scope="module")
def posting(control_plane: ControlPlane) -> Iterator[Posting]:
    """A receiver, and an API server (no controller manager: not needed) posting its Events to it."""
    with tempfile.TemporaryDirectory(prefix="jitgrant-audit-webhook-") as tmp:
        directory = Path(tmp)
        tls = generate_webhook_tls(directory / "tls")
        token = secrets.token_urlsafe(32)
        with _receiver(directory, token, tls) as receiver:
            hook = AuditWebhook(url=receiver.url, token=token, ca_file=tls.cafile)
            with ControlPlane(control_plane.bin_dir, controller_manager=False, audit_webhook=hook) as plane:
                yield Posting(plane=plane, receiver=receiver)


def test_a_real_api_server_posts_to_the_receiver_the_calls_its_own_log_has(posting: Posting) -> None:
    plane, receiver = posting.plane, posting.receiver
    namespace = _create_grant(plane)
    start = datetime.now(UTC) - timedelta(seconds=1)
    _act_as_agent(plane, namespace)
    # The file log is written before each response (blocking mode); the webhook posts a batch at
    # most a second later, so everything in the file now must reach the receiver's file.
    in_file = _events(plane.audit_log_path)
    deadline = time.monotonic() + 30
    received = _events(receiver.log)
    while not in_file.keys() <= received.keys() and time.monotonic() < deadline:
        time.sleep(0.2)
        received = _events(receiver.log)
    missing = sorted(in_file.keys() - received.keys())
    assert not missing, f"{len(missing)} of {len(in_file)} events never reached the receiver: {missing[:5]}"
    # Event for event what the API server wrote to its own log (same policy, same serializer).
    assert [received[key] for key in in_file] == list(in_file.values())

    from_receiver = _attributed(receiver.log, namespace, start)
    _assert_attributed(from_receiver, namespace)
    from_file = _attributed(plane.audit_log_path, namespace, start)
    assert [item.to_json() for item in from_receiver] == [item.to_json() for item in from_file]

    # The receiver refused nothing: no batch the API server gave up on, in its log or its metrics.
    assert PLUGIN_ERROR not in (plane.dir / "logs" / "kube-apiserver.log").read_text()
    assert _audit_errors(plane) == 0


def test_an_api_server_with_the_wrong_token_is_refused_and_nothing_is_written(
    control_plane: ControlPlane,
) -> None:
    with tempfile.TemporaryDirectory(prefix="jitgrant-audit-webhook-") as tmp:
        directory = Path(tmp)
        tls = generate_webhook_tls(directory / "tls")
        with _receiver(directory, secrets.token_urlsafe(32), tls) as receiver:
            # Retries 0.1 s apart (five tries in all, 10 s apart upstream) so it gives up quickly.
            hook = AuditWebhook(
                url=receiver.url, token=secrets.token_urlsafe(32), ca_file=tls.cafile, initial_backoff=0.1
            )
            with ControlPlane(control_plane.bin_dir, controller_manager=False, audit_webhook=hook) as plane:
                apiserver_log = plane.dir / "logs" / "kube-apiserver.log"
                deadline = time.monotonic() + 30
                while PLUGIN_ERROR not in apiserver_log.read_text() and time.monotonic() < deadline:
                    time.sleep(0.2)
                text = apiserver_log.read_text()
                # The receiver's 401 Status message, as the API server logged it for the lost batch.
                errors = [line for line in text.splitlines() if PLUGIN_ERROR in line]
                assert errors, plane.logs()["kube-apiserver"]
                assert all(
                    line.endswith("a bearer token is required: the one in the audit webhook kubeconfig")
                    for line in errors
                ), errors
                assert _audit_errors(plane) > 0
                assert _events(plane.audit_log_path)  # the API server did audit: the file log has them
            assert not receiver.log.exists()
            assert receiver.stop().splitlines()[-1] == "stopped after 0 batches, 0 events"
