"""jitgrant on a real kube-apiserver: the chart's CRDs, RBAC and webhook configurations (rendered by the
Helm SDK), the operator running with a TokenRequest token of the chart's ServiceAccount, and the
lifecycle, production approval, attacks and kubeconfig delivery checked against upstream's
authentication, RBAC (with its escalation check) and admission chain.

A real server differs from the embedded one in timing: RBAC is served from informers (a new binding
takes effect a moment later), token authentications are cached ~10 s, and a deleted ServiceAccount's
token may still pass for a few seconds. Every "works now"/"refused now" is therefore polled with a
deadline, never asserted at once.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from kubernetes.client import (
    ApiClient,
    AppsV1Api,
    Configuration,
    CoreV1Api,
    CustomObjectsApi,
    RbacAuthorizationV1Api,
)
from kubernetes.client.exceptions import ApiException

from jitgrant.models.text import MAX_JUSTIFICATION_LENGTH, MAX_REASON_LENGTH
from jitgrant.models.vocabulary import (
    APPROVALS_ANNOTATION,
    APPROVE_ANNOTATION,
    FINALIZER,
    OIDC_TOKEN_ANNOTATION,
    RELEASE_ANNOTATION,
    REVOKE_ANNOTATION,
)
from jitgrant_testing.aws import ServiceLoop
from jitgrant_testing.controlplane import ControlPlane
from jitgrant_testing.environment import EXAMPLES, GRANTS_NAMESPACE, load_manifests, wait_until
from jitgrant_testing.oidc import OIDCIssuer
from jitgrant_testing.realenv import RealEnvironment

NS = "agents"
APPROVE = APPROVE_ANNOTATION
APPROVALS = APPROVALS_ANNOTATION


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def request(
    name: str, *, policy: str = "oncall-restart", duration: str = "6s", **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "policy": policy,
            "namespace": "payments",
            "clusterRole": "jit-restart-checkout",
            "duration": duration,
            "justification": "INC-7 stuck pods",
        },
    }
    body["spec"].update(spec)
    return body


def outcome(call: Callable[[], Any]) -> int:
    """The HTTP status of `call`: 200 when it succeeds."""
    try:
        call()
    except ApiException as exc:
        return int(exc.status)
    return 200


def eventually_status(call: Callable[[], Any], want: int, *, timeout: float = 20.0, what: str) -> None:
    """RBAC and token caches on a real server lag: poll until `call` answers `want`."""
    seen: list[int] = []

    def reached() -> bool:
        seen.append(outcome(call))
        return seen[-1] == want

    try:
        wait_until(reached, timeout=timeout, what=what)
    except AssertionError:
        raise AssertionError(f"{what}: wanted {want}, last answers {seen[-5:]}") from None


def refusal(call: Callable[[], Any]) -> str:
    """The API server's message for a call admission must refuse (403 from a webhook)."""
    with pytest.raises(ApiException) as refused:
        call()
    assert refused.value.status == 403, refused.value.body
    message: str = json.loads(refused.value.body)["message"]
    return message


def restart(env: RealEnvironment, deployment: str, client: ApiClient) -> Callable[[], Any]:
    return lambda: env.restart_deployment("payments", deployment, client=client)


def bindings_of(env: RealEnvironment, uid: str) -> list[dict[str, Any]]:
    return [
        b
        for b in env.jit_bindings("payments")
        if b["metadata"]["labels"].get("jitgrant.dev/request-uid") == uid
    ]


@pytest.fixture(scope="module")
def agent(real_env: RealEnvironment) -> ApiClient:
    """The ServiceAccount the example policies name, allowed to file and patch its own requests."""
    real_env.allow(
        NS,
        role="agent-edit",
        rules=[{"apiGroups": ["jitgrant.dev"], "resources": ["accessrequests"], "verbs": ["patch"]}],
        service_account="oncall-agent",
    )
    return real_env.client_for_service_account(NS, "oncall-agent")


# --- lifecycle -------------------------------------------------------------------------------------


def test_a_grant_becomes_active_works_for_the_agent_and_expiry_removes_it(
    real_env: RealEnvironment, agent: ApiClient
) -> None:
    name = unique("restart")
    eventually_status(restart(real_env, "checkout", agent), 403, what="no access before the grant")
    real_env.create_request(request(name, duration="8s"), client=agent)
    active = real_env.wait_for_phase(NS, name, "Active", timeout=30)
    uid = active["metadata"]["uid"]
    [binding] = bindings_of(real_env, uid)
    assert binding["metadata"]["name"] == active["status"]["grant"]["roleBinding"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "oncall-agent", "namespace": NS}]
    assert binding["roleRef"]["name"] == "jit-restart-checkout"
    assert active["spec"]["requester"]["username"] == "system:serviceaccount:agents:oncall-agent"

    # The real RBAC authorizer now lets the agent do exactly what the ClusterRole names.
    eventually_status(restart(real_env, "checkout", agent), 200, what="the grant works on the real server")
    assert outcome(restart(real_env, "ledger", agent)) == 403

    expired = real_env.wait_for_phase(NS, name, "Expired", timeout=30)
    assert expired["status"]["conditions"][0]["reason"] == "Expired"
    assert bindings_of(real_env, uid) == []
    eventually_status(restart(real_env, "checkout", agent), 403, what="access ends with the grant")


def test_kubectl_get_ar_shows_a_future_expiry_not_invalid(
    real_env: RealEnvironment, agent: ApiClient, control_plane: ControlPlane
) -> None:
    """The Expires column as the built kubectl prints it from the real server's Table response."""
    name = unique("kubectl")
    real_env.create_request(request(name, duration="10m"), client=agent)
    active = real_env.wait_for_phase(NS, name, "Active", timeout=30)
    try:
        table = subprocess.run(
            [
                str(control_plane.binary("kubectl")),
                f"--kubeconfig={control_plane.kubeconfig_path('admin')}",
                "get",
                "ar",
                name,
                "-n",
                NS,
                "-o",
                "wide",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        header, row = table.splitlines()
        assert "<invalid>" not in row, table
        columns = header.split()
        assert "EXPIRES" in columns and "REQUESTER" in columns, header
        assert active["status"]["expiresAt"] in row, table
        assert "system:serviceaccount:agents:oncall-agent" in row, table
    finally:
        real_env.annotate_request(NS, name, {REVOKE_ANNOTATION: "test done"}, client=real_env.admin)


# --- production approval ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prod_policy(real_env: RealEnvironment) -> str:
    """examples/prod-approval with the approver group of the control plane's `approver` identity."""
    [policy] = load_manifests(EXAMPLES / "prod-approval" / "policy.yaml")
    policy["metadata"]["name"] = name = "prod-restart-real"
    policy["spec"]["approval"]["approvers"] = {"groups": ["jitgrant:approvers"]}
    real_env.apply([policy])
    # Both people may patch requests (RBAC); only the policy decides who is an approver.
    real_env.allow_to_approve(NS, user="approver")
    real_env.allow_to_approve(NS, user="mallory")
    return name


def test_only_the_approver_approves_and_the_agent_cannot_approve_itself(
    real_env: RealEnvironment, agent: ApiClient, prod_policy: str
) -> None:
    approver = real_env.client_for_user("approver")
    mallory = real_env.client_for_user("mallory")
    name = unique("prod")
    real_env.create_request(request(name, policy=prod_policy, duration="8s"), client=agent)
    pending = real_env.wait_for_phase(NS, name, "Pending", timeout=30)
    assert pending["status"]["reason"] == "AwaitingApproval"
    uid = pending["metadata"]["uid"]

    def approve_as(client: ApiClient) -> Callable[[], Any]:
        return lambda: real_env.annotate_request(NS, name, {APPROVE: "INC-7 ok"}, client=client)

    assert "is the requester and cannot approve or deny their own request" in refusal(approve_as(agent))
    assert "mallory is not an approver for policy prod-restart-real" in refusal(approve_as(mallory))
    forged = json.dumps(
        [
            {
                "approver": "mallory",
                "groups": ["jitgrant:approvers"],
                "at": datetime.now(UTC).isoformat(),
                "decision": "approve",
                "reason": "lgtm",
                "receipt": "v1:" + "0" * 64,
            }
        ]
    )
    assert "was not recorded by the jitgrant webhook for you (mallory)" in refusal(
        lambda: real_env.annotate_request(NS, name, {APPROVALS: forged}, client=mallory)
    )
    assert real_env.get_request(NS, name)["status"]["phase"] == "Pending"
    assert bindings_of(real_env, uid) == []

    approved = real_env.annotate_request(NS, name, {APPROVE: "INC-7 checked"}, client=approver)
    [entry] = json.loads(approved["metadata"]["annotations"][APPROVALS])
    assert (entry["approver"], entry["decision"]) == ("approver", "approve")
    assert "jitgrant:approvers" in entry["groups"]
    active = real_env.wait_for_phase(NS, name, "Active", timeout=30)
    assert [a["approver"] for a in active["status"]["approvals"]] == ["approver"]
    eventually_status(restart(real_env, "checkout", agent), 200, what="the approved grant works")
    real_env.wait_for_phase(NS, name, "Expired", timeout=30)
    assert bindings_of(real_env, uid) == []


# --- attacks ---------------------------------------------------------------------------------------


def test_a_forged_requester_is_overwritten_by_who_the_real_api_server_says(
    real_env: RealEnvironment, agent: ApiClient
) -> None:
    name = unique("forged")
    forged = request(name, duration="10m", namespace="orders")  # a namespace the policy refuses: no grant
    forged["spec"]["requester"] = {"username": "system:serviceaccount:jitgrant-system:jitgrant", "groups": []}
    created = real_env.create_request(forged, client=agent)
    assert created["spec"]["requester"]["username"] == "system:serviceaccount:agents:oncall-agent"
    assert "system:serviceaccounts:agents" in created["spec"]["requester"]["groups"]


def test_status_spec_finalizer_and_operator_annotations_are_the_operators_alone(
    real_env: RealEnvironment, agent: ApiClient
) -> None:
    """Even with RBAC on accessrequests/status, the agent cannot write status; nor change the spec,
    remove the finalizer or forge the operator's progress annotations."""
    real_env.allow(
        NS,
        role="agent-status",
        rules=[{"apiGroups": ["jitgrant.dev"], "resources": ["accessrequests/status"], "verbs": ["patch"]}],
        service_account="oncall-agent",
    )
    name = unique("held")
    real_env.create_request(request(name, duration="10m"), client=agent)
    active = real_env.wait_for_phase(NS, name, "Active", timeout=30)
    assert FINALIZER in active["metadata"]["finalizers"]
    custom = CustomObjectsApi(agent)

    def write_status() -> Any:
        return custom.patch_namespaced_custom_object_status(
            "jitgrant.dev",
            "v1alpha1",
            NS,
            "accessrequests",
            name,
            {"status": {"expiresAt": "2999-01-01T00:00:00Z"}},
        )

    # RBAC for the subresource may take a moment to arrive; then admission refuses it.
    wait_until(lambda: outcome(write_status) == 403 and _status_refusal(write_status), what="status refusal")
    assert "status of an AccessRequest is written only by the jitgrant operator" in refusal(write_status)

    def patch(body: dict[str, Any]) -> Callable[[], Any]:
        return lambda: custom.patch_namespaced_custom_object(
            "jitgrant.dev", "v1alpha1", NS, "accessrequests", name, body
        )

    with pytest.raises(ApiException) as immutable:  # the CRD's CEL transition rule, on the real server
        patch({"spec": {"duration": "15m"}})()
    assert immutable.value.status == 422
    assert "spec is immutable after creation" in str(immutable.value.body)
    finalizers = [f for f in active["metadata"]["finalizers"] if f != FINALIZER]
    assert "only the jitgrant operator removes the finalizer jitgrant.dev/revoke-grant" in refusal(
        patch({"metadata": {"finalizers": finalizers}})  # a merge patch replaces the whole list
    )
    assert "belongs to the jitgrant operator" in refusal(
        patch({"metadata": {"annotations": {"jitgrant.dev/reconcile": '{"success": true}'}}})
    )
    after = real_env.get_request(NS, name)
    assert after["status"]["expiresAt"] == active["status"]["expiresAt"]
    assert after["spec"]["duration"] == "10m"
    real_env.annotate_request(NS, name, {REVOKE_ANNOTATION: "test done"}, client=real_env.admin)
    real_env.wait_for_phase(NS, name, "Revoked", timeout=30)


def test_another_agent_cannot_revoke_a_grant_its_requester_can(
    real_env: RealEnvironment, agent: ApiClient
) -> None:
    """`patch` (what the chart's requester role gives every agent) does not let one agent end another's
    grant; the requester may; the admin revokes through the SubjectAccessReview (elsewhere in this file)."""
    rules = [{"apiGroups": ["jitgrant.dev"], "resources": ["accessrequests"], "verbs": ["get", "patch"]}]
    real_env.allow(NS, role="intruder-edit", rules=rules, service_account="intruder")
    intruder = real_env.client_for_service_account(NS, "intruder")
    name = unique("theirs")
    real_env.create_request(request(name, duration="10m"), client=agent)
    uid = real_env.wait_for_phase(NS, name, "Active", timeout=30)["metadata"]["uid"]

    def revoke_as(client: ApiClient, why: str) -> Callable[[], Any]:
        return lambda: real_env.annotate_request(NS, name, {REVOKE_ANNOTATION: why}, client=client)

    # RBAC for the intruder may take a moment to arrive; then admission refuses it.
    wait_until(lambda: _status_refusal(revoke_as(intruder, "mine now")), what="the webhook's refusal")
    message = refusal(revoke_as(intruder, "mine now"))
    assert "only the requester (system:serviceaccount:agents:oncall-agent), an approver of" in message
    assert "system:serviceaccount:agents:intruder is none of these" in message
    assert real_env.get_request(NS, name)["status"]["phase"] == "Active"
    assert len(bindings_of(real_env, uid)) == 1

    revoke_as(agent, "done early")()
    revoked = real_env.wait_for_phase(NS, name, "Revoked", timeout=30)
    assert revoked["status"]["message"] == "revoked by system:serviceaccount:agents:oncall-agent: done early"
    assert bindings_of(real_env, uid) == []


def test_free_text_people_read_is_limited_where_it_enters(
    real_env: RealEnvironment, agent: ApiClient
) -> None:
    """Issue 20 §3: a 10 KB justification was stored. The CRD schema now refuses it (and the API
    server names the field); the webhooks refuse an overlong revoke or release reason."""
    name = unique("long")
    with pytest.raises(ApiException) as schema:
        real_env.create_request(request(name, justification="INC-7 " + "A" * 10_000), client=agent)
    assert schema.value.status == 422
    message = json.loads(schema.value.body)["message"]
    assert "spec.justification" in message and f"{MAX_JUSTIFICATION_LENGTH}" in message, message

    fits = "INC-7 " + "A" * (MAX_JUSTIFICATION_LENGTH - 6)
    real_env.create_request(request(name, justification=fits, duration="10m"), client=agent)
    assert real_env.wait_for_phase(NS, name, "Active", timeout=30)["spec"]["justification"] == fits
    long = "x" * (MAX_REASON_LENGTH + 1)
    kinds = ((REVOKE_ANNOTATION, "a revoke reason"), (RELEASE_ANNOTATION, "a release reason"))
    for annotation, what in kinds:
        reason = refusal(lambda annotation=annotation: real_env.annotate_request(
            NS, name, {annotation: long}, client=agent
        ))  # fmt: skip
        assert (
            f"annotation {annotation} is {MAX_REASON_LENGTH + 1} characters; {what} of at most "
            f"{MAX_REASON_LENGTH} is accepted"
        ) in reason
    real_env.annotate_request(NS, name, {REVOKE_ANNOTATION: "test done"}, client=agent)
    real_env.wait_for_phase(NS, name, "Revoked", timeout=30)


def _status_refusal(call: Callable[[], Any]) -> bool:
    """True once the 403 comes from admission (the webhook's message), not from RBAC."""
    try:
        call()
    except ApiException as exc:
        return "jitgrant" in str(exc.body)
    return False


def test_the_operator_cannot_bind_a_cluster_role_outside_the_charts_allowlist(
    real_env: RealEnvironment, agent: ApiClient
) -> None:
    """jit-read-logs exists (the chart's example) but is not in this install's bind allowlist: the
    policy naming it is not Ready and says why, a request under it is refused at admission and never
    stored (issue 24 §5; it used to be stored and end Failed), and the real API server's escalation
    check refuses the operator's own token the binding."""
    policy_name = unique("logs")
    policy: dict[str, Any] = {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "GrantPolicy",
        "metadata": {"name": policy_name},
        "spec": {
            "requesters": {"serviceAccounts": [{"namespace": NS, "name": "oncall-agent"}]},
            "target": {"type": "InCluster"},
            "namespaces": ["payments"],
            "grants": [{"clusterRole": "jit-read-logs"}],
            "maxDuration": "15m",
            "approval": {"required": False},
        },
    }
    real_env.apply([policy])
    ready = wait_until(
        lambda: (
            CustomObjectsApi(real_env.admin)
            .get_cluster_custom_object("jitgrant.dev", "v1alpha1", "grantpolicies", policy_name)
            .get("status")
        ),
        what="the policy's Ready condition",
    )
    [condition] = ready["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "ClusterRoleNotBindable")

    runtime = real_env.operator.runtime
    assert runtime is not None
    wait_until(  # the webhook reads Ready from the replica's watch
        lambda: (state := runtime.watched_ready.get(policy_name)) is not None and state.status == "False",
        what="the webhook's watch has the condition",
    )
    name = unique("logs")
    with pytest.raises(ApiException) as at_admission:
        real_env.create_request(request(name, policy=policy_name, clusterRole="jit-read-logs"), client=agent)
    assert at_admission.value.status == 403
    refusal = json.loads(at_admission.value.body)["message"]
    assert f"PolicyNotReady: GrantPolicy '{policy_name}' is not Ready (ClusterRoleNotBindable" in refusal
    with pytest.raises(ApiException) as missing:
        CustomObjectsApi(real_env.admin).get_namespaced_custom_object(
            "jitgrant.dev", "v1alpha1", NS, "accessrequests", name
        )
    assert missing.value.status == 404
    # And the operator's own token really cannot bind it: the real escalation check says so.
    operator = real_env.client_for_service_account("jitgrant-system", "jitgrant")
    binding = {
        "metadata": {"name": unique("escalate")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "jit-read-logs"},
        "subjects": [{"kind": "ServiceAccount", "name": "oncall-agent", "namespace": NS}],
    }
    with pytest.raises(ApiException) as refused:
        RbacAuthorizationV1Api(operator).create_namespaced_role_binding("payments", binding)
    assert refused.value.status == 403
    assert "attempting to grant RBAC permissions not currently held" in str(refused.value.body)


# --- kubeconfig delivery (OIDC requester, InCluster target) ----------------------------------------

SUBJECT = "repo:acme/checkout:ref:refs/heads/main"


@pytest.fixture(scope="module")
def issuer(real_env: RealEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OIDCIssuer]:
    loop = ServiceLoop()
    oidc = OIDCIssuer(directory=tmp_path_factory.mktemp("oidc"))
    try:
        loop.run(oidc.start())
        runtime = real_env.operator.runtime
        assert runtime is not None
        # Keys from this issuer; the replay set stays the operator's own (Leases in the API server).
        runtime.oidc = oidc.verifier(replay=runtime.oidc.replay)
        yield oidc
    finally:
        loop.run(oidc.stop())
        loop.stop()


def test_a_token_without_jti_is_used_once_however_its_signature_is_spelled(
    real_env: RealEnvironment, issuer: OIDCIssuer, agent: ApiClient
) -> None:
    """Issue 20 §4: `==` appended to the signature segment still verified, so the replay set (keyed on
    the token's text) took the same token twice. The webhook now refuses the spelling, and the replay
    set (Leases in the API server) is keyed on what the issuer signed."""
    policy = unique("replay")
    real_env.apply(
        [
            {
                "apiVersion": "jitgrant.dev/v1alpha1",
                "kind": "GrantPolicy",
                "metadata": {"name": policy},
                "spec": {
                    "requesters": {"oidc": [issuer.requester(SUBJECT)]},
                    "target": {"type": "InCluster"},
                    "namespaces": ["payments"],
                    "grants": [{"clusterRole": "jit-restart-checkout"}],
                    "maxDuration": "15m",
                    "approval": {"required": False},
                },
            }
        ]
    )
    filer = agent  # files the request; the token proves who the requester is
    token = issuer.mint(SUBJECT, jti=None)

    def file(name: str, value: str) -> Callable[[], Any]:
        manifest = request(name, policy=policy, duration="5s")
        manifest["metadata"]["annotations"] = {OIDC_TOKEN_ANNOTATION: value}
        return lambda: real_env.create_request(manifest, client=filer)

    file(unique("first"), token)()
    padded = refusal(file(unique("padded"), token + "=="))
    assert "OIDC token refused: token's signature is not canonical base64url: it has '=' padding" in padded
    again = refusal(file(unique("again"), token))
    assert "OIDC token refused: token was already used (replayed 'jti')" in again


def test_the_delivered_kubeconfig_works_only_for_the_grant_and_its_token_dies_with_it(
    real_env: RealEnvironment, issuer: OIDCIssuer, control_plane: ControlPlane
) -> None:
    policy = unique("external")
    real_env.apply(
        [
            {
                "apiVersion": "jitgrant.dev/v1alpha1",
                "kind": "GrantPolicy",
                "metadata": {"name": policy},
                "spec": {
                    "requesters": {"oidc": [issuer.requester(SUBJECT)]},
                    "target": {"type": "InCluster"},
                    "namespaces": ["payments"],
                    "grants": [{"clusterRole": "jit-restart-checkout"}],
                    "maxDuration": "15m",
                    "approval": {"required": False},
                },
            }
        ]
    )
    real_env.allow_to_request(NS, user="agent")
    filer = real_env.client_for_user("agent")
    mallory = real_env.client_for_user("mallory")
    name = unique("external")
    manifest = request(name, policy=policy, duration="10s")
    manifest["metadata"]["annotations"] = {OIDC_TOKEN_ANNOTATION: issuer.mint(SUBJECT)}
    real_env.create_request(manifest, client=filer)
    active = real_env.wait_for_phase(NS, name, "Active", timeout=30)
    grant = active["status"]["grant"]

    # The Secret (like the ServiceAccount) is in the grants namespace, as the record says.
    assert {(r["kind"], r["namespace"]) for r in grant["objects"] if r["kind"] != "RoleBinding"} == {
        ("ServiceAccount", GRANTS_NAMESPACE),
        ("Secret", GRANTS_NAMESPACE),
        ("Role", GRANTS_NAMESPACE),
    }
    secret = CoreV1Api(filer).read_namespaced_secret(grant["kubeconfigSecret"], GRANTS_NAMESPACE)
    config = yaml.safe_load(base64.b64decode(secret.data["kubeconfig"]))
    assert (
        outcome(
            lambda: CoreV1Api(mallory).read_namespaced_secret(grant["kubeconfigSecret"], GRANTS_NAMESPACE)
        )
        == 403
    )
    [user] = config["users"]
    token = user["user"]["token"]
    [cluster] = config["clusters"]
    assert cluster["cluster"]["server"] == control_plane.server

    configuration = Configuration(host=cluster["cluster"]["server"])
    configuration.ssl_ca_cert = str(control_plane.ca_path)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    with ApiClient(configuration) as delivered:
        eventually_status(restart(real_env, "checkout", delivered), 200, what="the kubeconfig works")
        assert outcome(restart(real_env, "ledger", delivered)) == 403
        assert outcome(lambda: AppsV1Api(delivered).list_namespaced_deployment(NS)) == 403

        real_env.wait_for_phase(NS, name, "Expired", timeout=30)
        assert (
            outcome(
                lambda: CoreV1Api(real_env.admin).read_namespaced_secret(
                    grant["kubeconfigSecret"], GRANTS_NAMESPACE
                )
            )
            == 404
        )
        gone = outcome(
            lambda: CoreV1Api(real_env.admin).read_namespaced_service_account(
                grant["serviceAccount"], GRANTS_NAMESPACE
            )
        )
        assert gone == 404
        # The ServiceAccount is gone, so its bound token stops authenticating: 401 once the API
        # server's token cache (~10 s) lets go; until then RBAC already refuses (403).
        assert outcome(restart(real_env, "checkout", delivered)) in (401, 403)
        eventually_status(
            lambda: CoreV1Api(delivered).list_namespace(), 401, timeout=40, what="the token is dead"
        )


def test_a_finished_request_gives_its_finalizer_back_so_nothing_blocks_its_namespace(
    real_env: RealEnvironment, agent: ApiClient
) -> None:
    """Issue 23: after `helm uninstall` no operator is left to release jitgrant.dev/revoke-grant, so
    a finished request that still held it kept its namespace Terminating forever. The finalizer
    guards a live grant only: once the grant ended the operator releases it, and deleting the
    request (as a namespace deletion does) no longer waits for anyone."""
    name = unique("finished")
    real_env.create_request(request(name, duration="10m"), client=agent)
    active = real_env.wait_for_phase(NS, name, "Active", timeout=30)
    assert FINALIZER in active["metadata"]["finalizers"]  # guards the live grant
    real_env.annotate_request(NS, name, {REVOKE_ANNOTATION: "test done"}, client=real_env.admin)
    real_env.wait_for_phase(NS, name, "Revoked", timeout=30)

    def released() -> bool:
        return FINALIZER not in (real_env.get_request(NS, name)["metadata"].get("finalizers") or [])

    wait_until(released, timeout=20, what="the finished request's finalizer released")
    assert not bindings_of(real_env, active["metadata"]["uid"])
    custom = CustomObjectsApi(real_env.admin)
    custom.delete_namespaced_custom_object("jitgrant.dev", "v1alpha1", NS, "accessrequests", name)
    with pytest.raises(ApiException) as gone:  # deleted at once: nothing holds it
        custom.get_namespaced_custom_object("jitgrant.dev", "v1alpha1", NS, "accessrequests", name)
    assert gone.value.status == 404
