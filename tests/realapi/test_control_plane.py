"""The built control plane is a real Kubernetes API: authentication, RBAC (with its escalation
check), ServiceAccount tokens, audit logging and the controller manager, seen through the official
Python client and kubectl."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from jitgrant_testing.controlplane import ControlPlane


@contextmanager
def api(cp: ControlPlane, user: str = "admin", *, token: str | None = None) -> Iterator[client.ApiClient]:
    """An ApiClient for `user` through the kubeconfig the control plane wrote, or for a bare token."""
    if token is None:
        with config.new_client_from_config(config_file=str(cp.kubeconfig_path(user))) as api_client:
            yield api_client
        return
    configuration = client.Configuration(host=cp.server)
    configuration.ssl_ca_cert = str(cp.ca_path)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(configuration) as api_client:
        yield api_client


def eventually(check: Callable[[], Any], *, timeout: float = 30.0) -> Any:
    """Retry `check` until it returns something truthy: RBAC caches and controllers lag by a moment."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"realapi-{secrets.token_hex(3)}"
    with api(control_plane) as admin:
        client.CoreV1Api(admin).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    with api(control_plane) as admin:
        client.CoreV1Api(admin).delete_namespace(name)


def test_admin_creates_a_namespace_labelled_with_its_name(
    control_plane: ControlPlane, namespace: str
) -> None:
    with api(control_plane) as admin:
        ns = client.CoreV1Api(admin).read_namespace(namespace)
    assert ns.metadata.labels["kubernetes.io/metadata.name"] == namespace
    assert ns.status.phase == "Active"


def test_controller_manager_publishes_root_ca_and_deletes_namespaces(control_plane: ControlPlane) -> None:
    name = f"realapi-gone-{secrets.token_hex(3)}"
    with api(control_plane) as admin:
        core = client.CoreV1Api(admin)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        core.create_namespaced_config_map(name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))

        def root_ca() -> bool:
            names = {cm.metadata.name for cm in core.list_namespaced_config_map(name).items}
            return "kube-root-ca.crt" in names

        assert eventually(root_ca), "root-ca-cert-publisher never wrote kube-root-ca.crt"
        core.delete_namespace(name)

        def gone() -> bool:
            try:
                core.read_namespace(name)
            except ApiException as err:
                return bool(err.status == 404)
            return False

        assert eventually(gone, timeout=60), "the namespace controller never finished deleting"


def test_agent_without_rbac_is_forbidden(control_plane: ControlPlane, namespace: str) -> None:
    with api(control_plane, "agent") as agent, pytest.raises(ApiException) as refused:
        client.CoreV1Api(agent).list_namespaced_pod(namespace)
    assert refused.value.status == 403
    assert 'User "agent" cannot list resource "pods"' in json.loads(refused.value.body)["message"]


def test_binding_a_role_the_agent_does_not_hold_is_an_escalation(
    control_plane: ControlPlane, namespace: str
) -> None:
    rbac_rules = [
        client.V1PolicyRule(
            api_groups=["rbac.authorization.k8s.io"], resources=["rolebindings"], verbs=["create"]
        )
    ]
    with api(control_plane) as admin:
        rbac = client.RbacAuthorizationV1Api(admin)
        rbac.create_namespaced_role(
            namespace, client.V1Role(metadata=client.V1ObjectMeta(name="binder"), rules=rbac_rules)
        )
        rbac.create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="agent-binder"),
                role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="binder"),
                subjects=[
                    client.RbacV1Subject(kind="User", name="agent", api_group="rbac.authorization.k8s.io")
                ],
            ),
        )

    def binding(name: str, kind: str, role: str) -> client.V1RoleBinding:
        return client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=name),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind=kind, name=role),
            subjects=[
                client.RbacV1Subject(kind="User", name="mallory", api_group="rbac.authorization.k8s.io")
            ],
        )

    with api(control_plane, "agent") as agent:
        rbac = client.RbacAuthorizationV1Api(agent)

        # Binding what it holds itself (the same Role) is allowed once RBAC has seen its binding...
        def bind_own() -> bool:
            try:
                rbac.create_namespaced_role_binding(namespace, binding("pass-on", "Role", "binder"))
            except ApiException as err:
                if err.status == 403:
                    return False
                raise
            return True

        assert eventually(bind_own), "agent never got create on rolebindings"
        # ...binding ClusterRole admin, which it does not hold, is refused by the escalation check.
        with pytest.raises(ApiException) as refused:
            rbac.create_namespaced_role_binding(namespace, binding("escalate", "ClusterRole", "admin"))
    assert refused.value.status == 403
    assert (
        "attempting to grant RBAC permissions not currently held" in json.loads(refused.value.body)["message"]
    )


def test_service_account_token_request_authenticates(control_plane: ControlPlane, namespace: str) -> None:
    with api(control_plane) as admin:
        core = client.CoreV1Api(admin)
        core.create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="robot"))
        )
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        )
        token = core.create_namespaced_service_account_token("robot", namespace, request).status.token
    with api(control_plane, token=token) as robot:
        review = client.AuthenticationV1Api(robot).create_self_subject_review(client.V1SelfSubjectReview())
    assert review.status.user_info.username == f"system:serviceaccount:{namespace}:robot"
    assert f"system:serviceaccounts:{namespace}" in review.status.user_info.groups


def test_audit_log_records_the_refused_call_with_its_decision(
    control_plane: ControlPlane, namespace: str
) -> None:
    with api(control_plane, "agent") as agent, pytest.raises(ApiException):
        client.CoreV1Api(agent).read_namespaced_secret("nope", namespace)

    def refused_event() -> dict[str, Any] | None:
        for line in control_plane.audit_log_path.read_text().splitlines():
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            if (
                # .get: a request that failed authentication (401) is audited with no username.
                event["user"].get("username") == "agent"
                and ref.get("namespace") == namespace
                and ref.get("resource") == "secrets"
            ):
                return dict(event)
        return None

    event = eventually(refused_event, timeout=10)
    assert event is not None, "no audit event for the agent's refused call"
    assert event["apiVersion"] == "audit.k8s.io/v1" and event["kind"] == "Event"
    assert event["stage"] == "ResponseComplete"
    assert event["verb"] == "get" and event["responseStatus"]["code"] == 403
    assert event["annotations"]["authorization.k8s.io/decision"] == "forbid"
    assert event["level"] == "Metadata"


def test_rbac_writes_are_audited_with_request_and_response(
    control_plane: ControlPlane, namespace: str
) -> None:
    with api(control_plane) as admin:
        client.RbacAuthorizationV1Api(admin).create_namespaced_role(
            namespace, client.V1Role(metadata=client.V1ObjectMeta(name="audited"), rules=[])
        )

    def create_event() -> dict[str, Any] | None:
        for line in control_plane.audit_log_path.read_text().splitlines():
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            if (
                event["verb"] == "create"
                and ref.get("namespace") == namespace
                and ref.get("name") == "audited"
            ):
                return dict(event)
        return None

    event = eventually(create_event, timeout=10)
    assert event is not None
    assert event["level"] == "RequestResponse"
    assert event["requestObject"]["metadata"]["name"] == "audited"
    assert event["responseObject"]["metadata"]["uid"]


def test_kubectl_uses_the_admin_kubeconfig(control_plane: ControlPlane, namespace: str) -> None:
    out = subprocess.run(
        [
            str(control_plane.binary("kubectl")),
            "--kubeconfig",
            str(control_plane.kubeconfig_path("admin")),
            "get",
            "namespace",
            namespace,
            "-o",
            "jsonpath={.metadata.name}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout == namespace
    version = subprocess.run(
        [
            str(control_plane.binary("kubectl")),
            "--kubeconfig",
            str(control_plane.kubeconfig_path("agent")),
            "auth",
            "can-i",
            "list",
            "pods",
            "-n",
            namespace,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert version.stdout.strip() == "no"


def test_stop_leaves_no_process_directory_or_token_behind(control_plane: ControlPlane) -> None:
    plane = ControlPlane(control_plane.bin_dir, controller_manager=False)
    with plane:
        workdir = plane.dir
        pids = [proc.popen.pid for proc in plane._processes if proc.popen is not None]
        assert len(pids) == 2  # etcd, kube-apiserver
        with api(plane, "admin") as admin:
            assert client.VersionApi(admin).get_code().git_version == "v1.36.3"
    assert not workdir.exists()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} outlived stop()"
    with pytest.raises(KeyError):
        plane.token("admin")
    with pytest.raises(RuntimeError):
        plane.server  # noqa: B018 - raises once stopped
