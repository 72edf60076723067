"""Extending an Active grant (issue 25 section 1; identity-and-approvals.md, "Extending an active grant")
on a real kube-apiserver: each way an extension could widen or lengthen access beyond what the policy
allows is tried and refused at admission with its reason; the happy paths keep the same RoleBinding
(same uid) and end it at the new time, and an extension needing approval waits for a human.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from kubernetes.client import ApiClient, CustomObjectsApi, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from jitgrant.audit.query import grant_rows
from jitgrant.audit.records import AuditRecord
from jitgrant.cli.describe import Paint, describe_request
from jitgrant.client import AccessDenied, Client
from jitgrant.models.vocabulary import APPROVE_ANNOTATION, parse_time
from jitgrant_testing.environment import EXAMPLES, load_manifests, wait_until
from jitgrant_testing.realenv import RealEnvironment

from .test_jitgrant import NS, request, unique

AUTO = "extend-auto"  # extensions allowed without a human: at most 2, 2 minutes in all
ONCE = "extend-once"  # at most one extension
NONE = "extend-none"  # the example policy as it is: no extensions
HUMAN = "extend-human"  # the original and its extensions need an approver
OTHER = "mallory"  # a second requester the policies name (a user with a token on the server)


def _policy(example: str, name: str, **spec: Any) -> dict[str, Any]:
    [policy] = load_manifests(EXAMPLES / example / "policy.yaml")
    policy["metadata"]["name"] = name
    policy["spec"]["requesters"]["users"] = [OTHER]
    policy["spec"].update(spec)
    return policy


@pytest.fixture(scope="module")
def policies(real_env: RealEnvironment) -> None:
    real_env.apply(
        [
            _policy(
                "oncall-restart", AUTO, extensions={"allowed": True, "maxCount": 2, "maxTotalDuration": "2m"}
            ),
            _policy("oncall-restart", ONCE, extensions={"allowed": True, "maxCount": 1}),
            _policy("oncall-restart", NONE),
            _policy(
                "prod-approval",
                HUMAN,
                approval={"required": True, "approvers": {"users": ["approver"]}, "minApprovals": 1},
                extensions={"allowed": True, "maxCount": 2, "maxTotalDuration": "5m"},
            ),
        ]
    )
    real_env.allow_to_request(NS, user=OTHER)
    real_env.allow_to_approve(NS, user="approver")


@pytest.fixture(scope="module")
def agent(real_env: RealEnvironment) -> ApiClient:
    return real_env.client_for_service_account(NS, "oncall-agent")


def _active(
    real_env: RealEnvironment, agent: ApiClient, policy: str, duration: str = "60s"
) -> dict[str, Any]:
    name = unique("orig")
    real_env.create_request(request(name, policy=policy, duration=duration), client=agent)
    return real_env.wait_for_phase(NS, name, "Active", timeout=30)


def _extension(original: str, by: str = "30s", **spec: Any) -> dict[str, Any]:
    body = request(unique("ext"), policy=spec.pop("policy", AUTO), duration=by, justification="INC-7 more")
    body["spec"]["extends"] = original
    body["spec"].update(spec)
    return body


def _refusal(real_env: RealEnvironment, body: dict[str, Any], client: ApiClient) -> str:
    with pytest.raises(ApiException) as refused:
        real_env.create_request(body, client=client)
    assert refused.value.status == 403, refused.value.body
    message: str = json.loads(refused.value.body)["message"]
    assert "ExtensionRefused: " in message, message
    return message


def _stored_extensions(real_env: RealEnvironment, original: str) -> list[dict[str, Any]]:
    listed = CustomObjectsApi(real_env.admin).list_namespaced_custom_object(
        "jitgrant.dev", "v1alpha1", NS, "accessrequests"
    )
    return [item for item in listed["items"] if item["spec"].get("extends") == original]


def _binding_uid(real_env: RealEnvironment, body: dict[str, Any]) -> str:
    grant = body["status"]["grant"]
    found = RbacAuthorizationV1Api(real_env.admin).read_namespaced_role_binding(
        grant["roleBinding"], grant["namespace"]
    )
    return str(found.metadata.uid)


def _records(real_env: RealEnvironment, name: str, kind: str) -> list[dict[str, Any]]:
    if not real_env.audit_file.exists():
        return []
    lines = [json.loads(line) for line in real_env.audit_file.read_text().splitlines() if line.strip()]
    return [
        r["event"]
        for r in lines
        if r.get("kind") == "record" and r["event"]["type"] == kind and r["event"]["requestName"] == name
    ]


# --- refusals ---------------------------------------------------------------------------------------


def test_extending_someone_elses_grant_is_refused_and_changes_nothing(
    real_env: RealEnvironment, agent: ApiClient, policies: None
) -> None:
    original = _active(real_env, agent, AUTO)
    name = original["metadata"]["name"]
    other = real_env.client_for_user(OTHER)
    message = _refusal(real_env, _extension(name), other)
    assert f"only the requester of {name} may extend it (you are {OTHER})" in message
    assert _stored_extensions(real_env, name) == []
    assert real_env.get_request(NS, name)["status"]["expiresAt"] == original["status"]["expiresAt"]


@pytest.mark.parametrize(
    ("field", "value"), [("namespace", "orders"), ("clusterRole", "cluster-admin"), ("policy", NONE)]
)
def test_an_extension_that_changes_the_scope_is_refused(
    real_env: RealEnvironment, agent: ApiClient, policies: None, field: str, value: str
) -> None:
    original = _active(real_env, agent, AUTO)
    name = original["metadata"]["name"]
    message = _refusal(real_env, _extension(name, **{field: value}), agent)
    assert "an extension's scope must equal the original's" in message
    assert "an extension never widens a grant" in message
    assert _stored_extensions(real_env, name) == []


def test_an_extension_past_max_total_duration_is_refused_with_what_is_left(
    real_env: RealEnvironment, agent: ApiClient, policies: None
) -> None:
    original = _active(real_env, agent, AUTO)
    name = original["metadata"]["name"]
    message = _refusal(real_env, _extension(name, by="3m"), agent)
    assert f"past policy {AUTO}'s maxTotalDuration of 2m (at most 2m more may be added)" in message
    with Client.from_configuration(agent.configuration, namespace=NS) as client:
        client.extend(name, by="90s", justification="INC-7 more")
        message = _refusal(real_env, _extension(name, by="31s"), agent)
    assert "would add 121s in all" in message and "(at most 30s more may be added)" in message


def test_an_extension_past_max_count_is_refused(
    real_env: RealEnvironment, agent: ApiClient, policies: None
) -> None:
    original = _active(real_env, agent, ONCE)
    name = original["metadata"]["name"]
    with Client.from_configuration(agent.configuration, namespace=NS) as client:
        client.extend(name, by="10s", justification="INC-7 more")
    message = _refusal(real_env, _extension(name, by="10s", policy=ONCE), agent)
    assert (
        f"{name} was extended 1 time(s); policy {ONCE} allows at most 1 (spec.extensions.maxCount)" in message
    )


def test_an_extension_of_a_grant_that_is_not_active_is_refused(
    real_env: RealEnvironment, agent: ApiClient, policies: None
) -> None:
    name = unique("pending")
    real_env.create_request(request(name, policy=HUMAN, duration="60s"), client=agent)
    real_env.wait_for_phase(NS, name, "Pending", timeout=30)
    message = _refusal(real_env, _extension(name, policy=HUMAN), agent)
    assert f"{name} is Pending; only an Active grant may be extended" in message
    ended = _active(real_env, agent, AUTO, duration="2s")
    real_env.wait_for_phase(NS, ended["metadata"]["name"], "Expired", timeout=30)
    message = _refusal(real_env, _extension(ended["metadata"]["name"]), agent)
    assert "is Expired; only an Active grant may be extended" in message


def test_an_extension_under_a_policy_without_extensions_is_refused_and_the_dry_run_says_so(
    real_env: RealEnvironment, agent: ApiClient, policies: None
) -> None:
    original = _active(real_env, agent, NONE)
    name = original["metadata"]["name"]
    message = _refusal(real_env, _extension(name, policy=NONE), agent)
    assert f"policy {NONE} does not allow extensions (spec.extensions.allowed is false)" in message
    with Client.from_configuration(agent.configuration, namespace=NS) as client:
        check = client.check_extension(name, by="30s", justification="INC-7 more")
        assert (check.outcome, check.reason) == ("denied", "ExtensionRefused")
        with pytest.raises(AccessDenied) as refused:
            client.extend(name, by="30s", justification="INC-7 more")
    assert "does not allow extensions" in str(refused.value)
    assert _stored_extensions(real_env, name) == []


# --- applied ----------------------------------------------------------------------------------------


def test_an_extension_keeps_the_same_binding_and_the_grant_ends_at_the_new_time(
    real_env: RealEnvironment, agent: ApiClient, policies: None
) -> None:
    original = _active(real_env, agent, AUTO, duration="10s")
    name = original["metadata"]["name"]
    uid = _binding_uid(real_env, original)
    before = parse_time(original["status"]["expiresAt"])
    with Client.from_configuration(agent.configuration, namespace=NS) as client:
        check = client.check_extension(name, by="12s", justification="INC-7 more")
        assert (check.outcome, check.reason) == ("allowed", "AutoApproved")
        assert check.message.startswith("extension allowed, approved without a human")
        extended = client.extend(name, by="12s", justification="INC-7 more")
    after = before + timedelta(seconds=12)
    assert extended.status.expires_at == after
    [entry] = extended.status.extensions
    assert (entry.by, entry.approved_by, entry.expires_at) == ("12s", (), after)
    [applied] = _stored_extensions(real_env, name)
    assert (applied["status"]["phase"], applied["status"]["reason"]) == ("Applied", "ExtensionApplied")
    # Past the old end: the same binding, not a new one after a gap.
    wait_until(lambda: time.time() > before.timestamp() + 2, timeout=30, what="the old end passed")
    assert real_env.get_request(NS, name)["status"]["phase"] == "Active"
    assert _binding_uid(real_env, real_env.get_request(NS, name)) == uid
    ended = real_env.wait_for_phase(NS, name, "Expired", timeout=40)
    assert parse_time(ended["status"]["endedAt"]) >= after
    assert not [b for b in real_env.jit_bindings("payments") if b["metadata"]["uid"] == uid]
    [record] = wait_until(lambda: _records(real_env, name, "extended"), timeout=10, what="extended record")
    assert parse_time(record["window"]["expiresAt"]) == after
    assert f"through {entry.request}" in record["reason"]


def test_an_extension_that_needs_approval_waits_for_the_approver_and_records_who(
    real_env: RealEnvironment, agent: ApiClient, policies: None
) -> None:
    approver = real_env.client_for_user("approver")
    name = unique("human")
    real_env.create_request(request(name, policy=HUMAN, duration="60s"), client=agent)
    real_env.wait_for_phase(NS, name, "Pending", timeout=30)
    real_env.annotate_request(NS, name, {APPROVE_ANNOTATION: "INC-7 ok"}, client=approver)
    original = real_env.wait_for_phase(NS, name, "Active", timeout=30)
    with Client.from_configuration(agent.configuration, namespace=NS) as client:
        check = client.check_extension(name, by="2m", justification="INC-7 more")
        assert (check.outcome, check.approvals_needed) == ("pending-approval", 1)
        assert check.message.startswith("extension allowed, needs 1 approval(s)")
        filed = client.extend(name, by="2m", justification="INC-7 more", wait=False)
    ext = filed.metadata.name
    pending = real_env.wait_for_phase(NS, ext, "Pending", timeout=30)
    assert pending["status"]["reason"] == "AwaitingApproval"
    assert real_env.get_request(NS, name)["status"]["expiresAt"] == original["status"]["expiresAt"]
    real_env.annotate_request(NS, ext, {APPROVE_ANNOTATION: "INC-7 still needed"}, client=approver)
    real_env.wait_for_phase(NS, ext, "Applied", timeout=30)
    extended = real_env.get_request(NS, name)
    assert parse_time(extended["status"]["expiresAt"]) == parse_time(
        original["status"]["expiresAt"]
    ) + timedelta(minutes=2)
    assert extended["status"]["extensions"][0]["approvedBy"] == ["approver"]
    [record] = wait_until(lambda: _records(real_env, name, "extended"), timeout=10, what="extended record")
    assert [a["approver"] for a in record["approvers"]] == ["approver"]
    # audit query: the grant's row ends at the new time; the extension's row ended "applied", by whom.
    trail = [json.loads(line) for line in real_env.audit_file.read_text().splitlines() if line.strip()]
    rows = {
        row.request: row
        for row in grant_rows(AuditRecord.model_validate(r) for r in trail if r.get("kind") == "record")
    }
    assert rows[f"{NS}/{name}"].expires_at == parse_time(extended["status"]["expiresAt"])
    assert (rows[f"{NS}/{ext}"].outcome, rows[f"{NS}/{ext}"].approvers) == ("applied", ("approver",))
    # describe shows each extension with who approved it.
    shown = describe_request(
        extended,
        cluster_role_rules=None,
        cluster_role_error="not read",
        policy_spec=None,
        paint=Paint(enabled=False),
    )
    assert f"+ 2m through {ext}" in shown and "(approver)" in shown
