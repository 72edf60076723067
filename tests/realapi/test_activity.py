"""`jitgrant activity`'s file source reads a real kube-apiserver's audit log: the RBAC reason of an
allowed call names the binding exactly as upstream writes it, and a refused call is tied to the
identity and window."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from jitgrant.activity.attribution import Basis, GrantIdentity, Outcome, activity
from jitgrant.activity.sources import AuditLogFiles, Window
from jitgrant_testing.controlplane import ControlPlane


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"activity-{secrets.token_hex(3)}"
    with config.new_client_from_config(config_file=str(control_plane.kubeconfig_path("admin"))) as admin:
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
    yield name
    with config.new_client_from_config(config_file=str(control_plane.kubeconfig_path("admin"))) as admin:
        client.CoreV1Api(admin).delete_namespace(name)


def test_the_file_source_attributes_a_real_api_servers_calls(
    control_plane: ControlPlane, namespace: str
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    with config.new_client_from_config(config_file=str(control_plane.kubeconfig_path("agent"))) as agent:
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
    grant = GrantIdentity(
        binding_name="jit-pods", binding_namespace=namespace, usernames=frozenset({"agent"}), start=start
    )
    found = activity(AuditLogFiles(control_plane.audit_log_path).calls(Window(start=start, end=None)), grant)
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
