"""The webhooks as the API server sees them: AdmissionReview in, JSONPatch and verdicts out, over HTTPS."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import pytest
from kopf._cogs.structs import references
from kopf._core.engines.admission import build_webhooks

from identity.issuer import LocalIssuer
from jitgrant.approvals.counting import tally
from jitgrant.approvals.receipts import parse_recorded
from jitgrant.identity.stamp import verify_requester_seal
from jitgrant.models import AccessRequest, ProofKind
from jitgrant.models.vocabulary import APPROVALS_ANNOTATION, REQUESTER_SEAL_ANNOTATION
from jitgrant.operator import admission
from jitgrant_testing.tls import (
    client_ssl_context,
    generate_webhook_tls,
    issue_client_certificate,
)

from .apiserver import AdmissionChain, WebhookEndpoint, running_webhooks
from .conftest import AGENT, ALICE, BOB, KEY, NS, OPERATOR, WebhookRuntime, request_body


def _seal_verifies(obj: dict[str, Any]) -> bool:
    meta = obj["metadata"]
    return verify_requester_seal(
        key=KEY,
        namespace=meta["namespace"],
        name=meta["name"],
        spec=obj["spec"],
        seal=meta["annotations"].get(REQUESTER_SEAL_ANNOTATION),
    )


async def test_create_is_stamped_from_userinfo_by_json_patch(endpoint: WebhookEndpoint) -> None:
    answer = await endpoint.review(
        admission.MUTATE_ID, operation="CREATE", obj=request_body(), userinfo=AGENT
    )
    assert answer.allowed
    ops = {op["path"]: op for op in answer.patch}
    assert ops["/spec/requester"] == {
        "op": "add",
        "path": "/spec/requester",
        "value": {
            "username": "system:serviceaccount:agents:oncall",
            "uid": "uid-system:serviceaccount:agents:oncall",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:agents", "system:authenticated"],
            "extra": {},
            "provenBy": "kubernetes",
        },
    }
    assert ops["/metadata/annotations"]["value"][REQUESTER_SEAL_ANNOTATION].startswith("v1:")


async def test_typed_requester_is_replaced_whole(chain: AdmissionChain) -> None:
    forged = {
        "username": "alice",
        "groups": ["system:masters"],
        "provenBy": "oidc",
        "issuer": "x",
        "subject": "y",
    }
    outcome = await chain.create(request_body(requester=forged), userinfo=AGENT)
    assert outcome.allowed and outcome.object is not None
    requester = outcome.object["spec"]["requester"]
    assert requester["username"] == AGENT["username"]
    assert "issuer" not in requester and "subject" not in requester
    assert requester["provenBy"] == "kubernetes"
    assert _seal_verifies(outcome.object)
    parsed = AccessRequest.from_object(outcome.object)
    assert parsed.spec.requester is not None and parsed.spec.requester.groups == tuple(AGENT["groups"])


async def test_generate_name_is_resolved_by_the_webhook_so_the_seal_covers_it(chain: AdmissionChain) -> None:
    body = request_body()
    del body["metadata"]["name"]
    body["metadata"]["generateName"] = "restart-"
    outcome = await chain.create(body, userinfo=AGENT)
    assert outcome.allowed and outcome.object is not None
    assert outcome.object["metadata"]["name"].startswith("restart-")
    assert len(outcome.object["metadata"]["name"]) == len("restart-") + 5
    assert _seal_verifies(outcome.object)


async def test_oidc_token_becomes_a_verified_stamp_and_is_not_stored(
    chain: AdmissionChain, issuer: LocalIssuer
) -> None:
    token = issuer.mint(sub="agent-7", groups=["release"])
    body = request_body()
    body["metadata"]["annotations"] = {"jitgrant.dev/oidc-token": token}
    outcome = await chain.create(body, userinfo=AGENT)
    assert outcome.allowed and outcome.object is not None
    assert token not in json.dumps(outcome.object)
    assert "jitgrant.dev/oidc-token" not in outcome.object["metadata"]["annotations"]
    stamp = AccessRequest.from_object(outcome.object).spec.requester
    assert stamp is not None
    assert stamp.proven_by is ProofKind.OIDC
    assert stamp.username == f"oidc:{issuer.url}#agent-7"
    assert (stamp.issuer, stamp.subject, stamp.groups) == (issuer.url, "agent-7", ("release",))
    assert stamp.extra == {"jitgrant.dev/created-by": (AGENT["username"],)}
    assert _seal_verifies(outcome.object)


async def test_dry_run_does_not_use_up_the_token(chain: AdmissionChain, issuer: LocalIssuer) -> None:
    body = request_body()
    body["metadata"]["annotations"] = {"jitgrant.dev/oidc-token": issuer.mint()}
    assert (await chain.create(body, userinfo=AGENT, dry_run=True)).allowed
    assert (await chain.create(body, userinfo=AGENT)).allowed
    again = await chain.create(body, userinfo=AGENT)
    assert not again.allowed and "already used" in again.message


async def test_approvals_are_recorded_with_receipts_and_counted(
    chain: AdmissionChain, runtime: WebhookRuntime
) -> None:
    created = await chain.create(request_body(), userinfo=AGENT)
    assert created.allowed
    first = await chain.update(
        NS, "restart-checkout", _annotate("jitgrant.dev/approve", "looks right"), userinfo=ALICE
    )
    assert first.allowed and first.object is not None
    annotations = first.object["metadata"]["annotations"]
    assert "jitgrant.dev/approve" not in annotations
    (entry,) = parse_recorded(annotations[APPROVALS_ANNOTATION])
    assert (entry.approver, entry.decision, entry.reason, entry.groups) == (
        "alice",
        "approve",
        "looks right",
        ("system:authenticated",),
    )
    assert (
        await chain.update(NS, "restart-checkout", _annotate("jitgrant.dev/approve", ""), userinfo=BOB)
    ).allowed
    stored = chain.get(NS, "restart-checkout")
    request = AccessRequest.from_object(stored)
    assert request.spec.requester is not None
    result = tally(
        policy=runtime.policies["prod"].approval,
        requester=request.spec.requester,
        recorded=parse_recorded(stored["metadata"]["annotations"][APPROVALS_ANNOTATION]),
        key=KEY,
        request_uid=stored["metadata"]["uid"],
        spec=stored["spec"],
    )
    assert result.approved and [e.approver for e in result.counted] == ["alice", "bob"]


async def test_a_deny_is_recorded_and_denies(chain: AdmissionChain, runtime: WebhookRuntime) -> None:
    await chain.create(request_body(), userinfo=AGENT)
    outcome = await chain.update(
        NS, "restart-checkout", _annotate("jitgrant.dev/deny", "not during freeze"), userinfo=BOB
    )
    assert outcome.allowed
    stored = chain.get(NS, "restart-checkout")
    request = AccessRequest.from_object(stored)
    assert request.spec.requester is not None
    result = tally(
        policy=runtime.policies["prod"].approval,
        requester=request.spec.requester,
        recorded=parse_recorded(stored["metadata"]["annotations"][APPROVALS_ANNOTATION]),
        key=KEY,
        request_uid=stored["metadata"]["uid"],
        spec=stored["spec"],
    )
    assert result.denied_by is not None and result.denied_by.reason == "not during freeze"


async def test_the_operators_own_metadata_patches_pass(chain: AdmissionChain) -> None:
    await chain.create(request_body(), userinfo=AGENT)

    def kopf_bookkeeping(obj: dict[str, Any]) -> None:
        obj["metadata"].setdefault("finalizers", []).append("jitgrant.dev/revoke-grant")
        obj["metadata"]["annotations"]["jitgrant.dev/reconcile"] = '{"started":"2025-01-01T00:00:00Z"}'
        obj["metadata"]["annotations"]["jitgrant.dev/last-handled-configuration"] = "{}"

    assert (await chain.update(NS, "restart-checkout", kopf_bookkeeping, userinfo=OPERATOR)).allowed

    def release(obj: dict[str, Any]) -> None:
        obj["metadata"]["finalizers"].remove("jitgrant.dev/revoke-grant")
        del obj["metadata"]["annotations"]["jitgrant.dev/reconcile"]

    assert (await chain.update(NS, "restart-checkout", release, userinfo=OPERATOR)).allowed
    status = await chain.update_status(NS, "restart-checkout", {"phase": "Pending"}, userinfo=OPERATOR)
    assert status.allowed


async def test_ordinary_label_edits_by_anyone_pass(chain: AdmissionChain) -> None:
    await chain.create(request_body(), userinfo=AGENT)
    outcome = await chain.update(
        NS,
        "restart-checkout",
        lambda o: o["metadata"].setdefault("labels", {}).update(team="pay"),
        userinfo=AGENT,
    )
    assert outcome.allowed


async def test_a_leftover_approve_annotation_is_not_recorded_for_whoever_updates_next(
    chain: AdmissionChain,
) -> None:
    body = request_body()
    outcome = await chain.create(body, userinfo=AGENT)
    assert outcome.object is not None
    stored = outcome.object
    stored["metadata"]["annotations"]["jitgrant.dev/approve"] = "written while the webhook was down"
    chain.put(stored)
    bump = await chain.update(
        NS,
        "restart-checkout",
        lambda o: o["metadata"]["annotations"].update({"jitgrant.dev/reconcile": "x"}),
        userinfo=OPERATOR,
    )
    assert bump.allowed and bump.object is not None
    assert APPROVALS_ANNOTATION not in bump.object["metadata"]["annotations"]


async def test_without_a_runtime_the_webhooks_fail_closed(tmp_path: Path) -> None:
    tls = generate_webhook_tls(tmp_path / "tls")
    async with running_webhooks(tls=tls, runtime=None, client_ssl=client_ssl_context(tls)) as endpoint:
        answer = await endpoint.review(
            admission.MUTATE_ID, operation="CREATE", obj=request_body(), userinfo=AGENT
        )
    assert not answer.allowed
    assert answer.code == 503
    assert answer.message == "jitgrant operator is not ready (no runtime in kopf's memo); try again shortly"


async def test_with_a_client_ca_only_the_api_server_can_call(tmp_path: Path, runtime: WebhookRuntime) -> None:
    tls = generate_webhook_tls(tmp_path / "tls")
    apiserver = issue_client_certificate(tls, tmp_path / "apiserver")
    async with running_webhooks(
        tls=tls, runtime=runtime, client_ssl=client_ssl_context(tls, apiserver), client_ca_pem=tls.ca_pem
    ) as endpoint:
        answer = await endpoint.review(
            admission.MUTATE_ID, operation="CREATE", obj=request_body(), userinfo=AGENT
        )
        assert answer.allowed
        stranger = client_ssl_context(tls)  # trusts the server, but has no client certificate
        with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
            async with endpoint.session.post(
                f"{endpoint.url}/{admission.MUTATE_ID}", json={}, ssl=stranger
            ) as r:
                await r.read()


def test_webhook_configurations_fail_closed_and_cover_status() -> None:
    registry = kopf.OperatorRegistry()
    admission.register(registry)
    resource = references.Resource("jitgrant.dev", "v1alpha1", "accessrequests")
    hooks = {
        hook["name"]: hook
        for hook in build_webhooks(
            registry._webhooks.get_all_handlers(),
            resources=[resource],
            name_suffix="jitgrant.dev",
            client_config={"url": "https://jitgrant.jitgrant-system.svc:9443"},
        )
    }
    assert set(hooks) == {
        "stamp-requester.jitgrant.dev",
        "validate-request.jitgrant.dev",
        "guard-status.jitgrant.dev",
        "record-deletion.jitgrant.dev",
    }
    assert {hook["failurePolicy"] for hook in hooks.values()} == {"Fail"}
    assert hooks["record-deletion.jitgrant.dev"]["rules"][0]["operations"] == ["DELETE"]
    assert hooks["record-deletion.jitgrant.dev"]["sideEffects"] == "NoneOnDryRun"
    assert hooks["stamp-requester.jitgrant.dev"]["sideEffects"] == "NoneOnDryRun"
    assert hooks["stamp-requester.jitgrant.dev"]["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    assert hooks["guard-status.jitgrant.dev"]["rules"][0]["resources"] == ["accessrequests/status"]
    assert hooks["validate-request.jitgrant.dev"]["clientConfig"]["url"].endswith("/validate-request")


def _annotate(name: str, value: str) -> Any:
    def change(obj: dict[str, Any]) -> None:
        obj["metadata"].setdefault("annotations", {})[name] = value

    return change


async def test_the_operator_is_who_the_settings_name(chain: AdmissionChain, runtime: WebhookRuntime) -> None:
    runtime.settings = runtime.settings.model_copy(
        update={"operator_username": "system:serviceaccount:ops:jit"}
    )
    await chain.create(request_body(), userinfo=AGENT)
    progress = _annotate("jitgrant.dev/reconcile", "{}")
    default_named = await chain.update(NS, "restart-checkout", progress, userinfo=OPERATOR)
    assert not default_named.allowed and "belongs to the jitgrant operator" in default_named.message
    configured = {
        "username": "system:serviceaccount:ops:jit",
        "uid": "x",
        "groups": ["system:serviceaccounts"],
    }
    assert (await chain.update(NS, "restart-checkout", progress, userinfo=configured)).allowed
