"""What an agent (or a careless or hostile person) tries, and the refusal they get back.

Every case goes through kopf's webhook server over HTTPS with the AdmissionReview the API server would
send; the refusal message is what kubectl or the `jitgrant` CLI prints. Where the attack assumes the
webhooks were bypassed (written straight into storage), the defence is the reconciler's: the seal and
the receipts, checked here with the same functions the reconciler calls.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from identity.issuer import LocalIssuer, hmac_token, rsa_key, unsigned_token
from jitgrant.approvals.counting import tally
from jitgrant.approvals.receipts import parse_recorded, record_decision
from jitgrant.approvals.review import is_sealed
from jitgrant.models import AccessRequest
from jitgrant.models.vocabulary import APPROVALS_ANNOTATION

from .apiserver import AdmissionChain, Outcome
from .conftest import (
    AGENT,
    ALICE,
    BOB,
    CAROL,
    HELPER,
    KEY,
    MALLORY,
    NS,
    OPERATOR,
    WebhookRuntime,
    request_body,
    user,
)

NAME = "restart-checkout"
Change = Callable[[dict[str, Any]], None]


def annotate(name: str, value: str = "") -> Change:
    def change(obj: dict[str, Any]) -> None:
        obj["metadata"].setdefault("annotations", {})[name] = value

    return change


def add_policy(
    runtime: WebhookRuntime, name: str, *, users: tuple[str, ...], groups: tuple[str, ...]
) -> None:
    """A variant of policy prod with other approvers."""
    prod = runtime.policies["prod"]
    approvers = prod.approval.approvers.model_copy(update={"users": users, "groups": groups})
    approval = prod.approval.model_copy(update={"approvers": approvers})
    runtime.policies[name] = prod.model_copy(update={"approval": approval})


def refused(outcome: Outcome, message: str, *, code: int = 403) -> None:
    assert not outcome.allowed, "the attack was let through"
    assert message in outcome.message, outcome.message
    assert outcome.code == code


async def created(
    chain: AdmissionChain, body: dict[str, Any] | None = None, *, by: dict[str, Any] = AGENT
) -> dict[str, Any]:
    outcome = await chain.create(body or request_body(NAME), userinfo=by)
    assert outcome.allowed, outcome.message
    assert outcome.object is not None
    return outcome.object


def counted(chain: AdmissionChain, runtime: WebhookRuntime, *, name: str = NAME, policy: str = "prod") -> Any:
    stored = chain.get(NS, name)
    requester = AccessRequest.from_object(stored).spec.requester
    assert requester is not None
    return tally(
        policy=runtime.policies[policy].approval,
        requester=requester,
        recorded=parse_recorded(stored["metadata"].get("annotations", {}).get(APPROVALS_ANNOTATION)),
        key=KEY,
        request_uid=stored["metadata"]["uid"],
        spec=stored["spec"],
    )


# --- forged identity ---------------------------------------------------------------------------------


async def test_01_forged_requester_is_overwritten_by_who_the_api_server_says(chain: AdmissionChain) -> None:
    obj = await created(chain, request_body(NAME, requester={"username": "alice", "groups": ["sre"]}))
    assert obj["spec"]["requester"]["username"] == AGENT["username"]
    assert obj["spec"]["requester"]["groups"] == AGENT["groups"]


async def test_02_forged_requester_with_the_mutating_webhook_bypassed_is_refused(
    chain: AdmissionChain,
) -> None:
    chain.mutating = False
    outcome = await chain.create(request_body(NAME, requester={"username": "alice"}), userinfo=AGENT)
    refused(outcome, "spec.requester is missing or its seal does not verify")


async def test_03_seal_copied_from_another_request_is_refused(chain: AdmissionChain) -> None:
    original = await created(chain)
    chain.mutating = False
    copy_ = request_body("other-name", requester=original["spec"]["requester"])
    copy_["metadata"]["annotations"] = dict(original["metadata"]["annotations"])
    refused(await chain.create(copy_, userinfo=MALLORY), "seal does not verify")


async def test_04_request_stored_without_any_webhook_grants_nothing(chain: AdmissionChain) -> None:
    forged = request_body(
        NAME, requester={"username": "system:serviceaccount:agents:oncall", "provenBy": "kubernetes"}
    )
    forged["metadata"]["annotations"] = {"jitgrant.dev/requester-seal": "v1:" + "0" * 64}
    stored = chain.put(forged)
    assert not is_sealed(stored, key=KEY)  # the reconciler refuses an unsealed request
    refused(
        await chain.update(NS, NAME, annotate("jitgrant.dev/approve"), userinfo=ALICE),
        "was not stamped and sealed by the jitgrant webhook",
    )


# --- immutable spec, stamp and seal --------------------------------------------------------------------


async def test_05_spec_changed_after_approval_is_refused(chain: AdmissionChain) -> None:
    await created(chain)
    assert (await chain.update(NS, NAME, annotate("jitgrant.dev/approve"), userinfo=ALICE)).allowed

    def widen(obj: dict[str, Any]) -> None:
        obj["spec"]["clusterRole"] = "cluster-admin"

    refused(await chain.update(NS, NAME, widen, userinfo=AGENT), "spec is immutable after creation")


async def test_06_requester_stamp_cannot_be_edited(chain: AdmissionChain) -> None:
    await created(chain)

    def become_alice(obj: dict[str, Any]) -> None:
        obj["spec"]["requester"]["username"] = "alice"

    refused(await chain.update(NS, NAME, become_alice, userinfo=AGENT), "spec is immutable after creation")


async def test_07_even_the_operator_cannot_change_the_spec(chain: AdmissionChain) -> None:
    await created(chain)

    def extend(obj: dict[str, Any]) -> None:
        obj["spec"]["duration"] = "15m"

    refused(await chain.update(NS, NAME, extend, userinfo=OPERATOR), "spec is immutable after creation")


async def test_08_seal_cannot_be_edited(chain: AdmissionChain) -> None:
    await created(chain)
    outcome = await chain.update(
        NS, NAME, annotate("jitgrant.dev/requester-seal", "v1:" + "a" * 64), userinfo=AGENT
    )
    refused(outcome, "jitgrant.dev/requester-seal is set once, at creation, and cannot change")


async def test_09_seal_cannot_be_removed(chain: AdmissionChain) -> None:
    await created(chain)
    outcome = await chain.update(
        NS, NAME, lambda o: o["metadata"]["annotations"].pop("jitgrant.dev/requester-seal"), userinfo=AGENT
    )
    refused(outcome, "jitgrant.dev/requester-seal is set once")


# --- who may approve ------------------------------------------------------------------------------------


async def test_10_requester_cannot_approve_itself(chain: AdmissionChain, runtime: WebhookRuntime) -> None:
    add_policy(runtime, "self", users=("alice", AGENT["username"]), groups=("sre",))
    await created(chain, request_body(NAME, policy="self"))
    refused(
        await chain.update(NS, NAME, annotate("jitgrant.dev/approve"), userinfo=AGENT),
        "system:serviceaccount:agents:oncall is the requester and cannot approve or deny their own request",
    )


async def test_11_requester_cannot_approve_through_a_second_service_account_in_a_shared_group(
    chain: AdmissionChain,
) -> None:
    await created(chain, request_body(NAME, policy="sloppy"))  # approvers.groups has system:serviceaccounts
    refused(
        await chain.update(NS, NAME, annotate("jitgrant.dev/approve"), userinfo=HELPER),
        "is a ServiceAccount; a ServiceAccount may approve only when named in approval.approvers.users",
    )


async def test_12_non_approver_cannot_approve(chain: AdmissionChain) -> None:
    await created(chain)
    refused(
        await chain.update(NS, NAME, annotate("jitgrant.dev/approve", "trust me"), userinfo=MALLORY),
        "mallory is not an approver for policy prod (approvers: users alice; groups sre)",
    )


async def test_13_non_approver_cannot_deny_either(chain: AdmissionChain) -> None:
    await created(chain)
    refused(
        await chain.update(NS, NAME, annotate("jitgrant.dev/deny", "spite"), userinfo=MALLORY),
        "mallory is not an approver for policy prod",
    )


async def test_14_the_same_approver_twice_is_refused(chain: AdmissionChain, runtime: WebhookRuntime) -> None:
    await created(chain)
    assert (await chain.update(NS, NAME, annotate("jitgrant.dev/approve"), userinfo=ALICE)).allowed
    refused(
        await chain.update(NS, NAME, annotate("jitgrant.dev/approve", "again"), userinfo=ALICE),
        "alice already approved this request at",
    )
    assert not counted(chain, runtime).approved  # minApprovals 2: one person is not enough


async def test_15_a_username_differing_in_case_is_another_identity_and_not_an_approver(
    chain: AdmissionChain,
) -> None:
    await created(chain)
    refused(
        await chain.update(NS, NAME, annotate("jitgrant.dev/approve"), userinfo=user("Alice")),
        "Alice is not an approver for policy prod",
    )
    refused(
        await chain.update(NS, NAME, annotate("jitgrant.dev/approve"), userinfo=user("alice ")),
        "alice  is not an approver",
    )


async def test_16_an_identity_equal_to_the_requester_up_to_case_counts_as_the_requester(
    chain: AdmissionChain, runtime: WebhookRuntime
) -> None:
    add_policy(runtime, "loose", users=("alice",), groups=("sre", "dev-team"))
    requester = user("dave", "dev-team")
    await created(chain, request_body(NAME, policy="loose"), by=requester)
    refused(
        await chain.update(NS, NAME, annotate("jitgrant.dev/approve"), userinfo=user(" DAVE", "dev-team")),
        "is the requester and cannot approve",
    )


async def test_17_the_creator_of_an_oidc_request_cannot_approve_it(
    chain: AdmissionChain, runtime: WebhookRuntime, issuer: LocalIssuer
) -> None:
    body = request_body(NAME)
    body["metadata"]["annotations"] = {"jitgrant.dev/oidc-token": issuer.mint()}
    await created(chain, body, by=BOB)  # bob holds the agent's token and files the request for it
    refused(
        await chain.update(NS, NAME, annotate("jitgrant.dev/approve"), userinfo=BOB),
        f"bob created this request for oidc:{issuer.url}#agent-7 and cannot approve or deny it",
    )


# --- approvals written by hand ------------------------------------------------------------------------------


async def test_18_approvals_annotation_written_by_hand_is_refused(chain: AdmissionChain) -> None:
    await created(chain)
    forged = json.dumps(
        [
            {
                "approver": "alice",
                "groups": [],
                "at": "2025-01-01T00:00:00+00:00",
                "decision": "approve",
                "reason": "",
                "receipt": "v1:" + "0" * 64,
            }
        ]
    )
    refused(
        await chain.update(NS, NAME, annotate(APPROVALS_ANNOTATION, forged), userinfo=MALLORY),
        "was not recorded by the jitgrant webhook for you (mallory)",
    )


async def test_19_approvals_written_while_the_webhook_was_bypassed_count_for_nothing(
    chain: AdmissionChain, runtime: WebhookRuntime
) -> None:
    obj = await created(chain)
    forged = [
        {
            "approver": name,
            "groups": ["sre"],
            "at": "2025-01-01T00:00:00+00:00",
            "decision": "approve",
            "reason": "",
            "receipt": "v1:" + "ab" * 32,
        }
        for name in ("alice", "bob")
    ]
    obj["metadata"]["annotations"][APPROVALS_ANNOTATION] = json.dumps(forged)
    chain.put(obj)
    result = counted(chain, runtime)
    assert not result.approved
    assert [reason for _, reason in result.ignored] == [
        "the receipt of alice's approve does not verify for this request "
        "(written without the webhook, altered, or copied from another request)",
        "the receipt of bob's approve does not verify for this request "
        "(written without the webhook, altered, or copied from another request)",
    ]


async def test_20_a_forged_receipt_in_the_callers_own_name_is_refused(chain: AdmissionChain) -> None:
    await created(chain)
    entry = {
        "approver": "bob",
        "groups": BOB["groups"],
        "at": "2025-01-01T00:00:00+00:00",
        "decision": "approve",
        "reason": "",
        "receipt": "v1:" + "cd" * 32,
    }
    refused(
        await chain.update(NS, NAME, annotate(APPROVALS_ANNOTATION, json.dumps([entry])), userinfo=BOB),
        "was not recorded by the jitgrant webhook for you (bob) on this request",
    )


async def test_21_a_receipt_made_with_another_key_is_refused(chain: AdmissionChain) -> None:
    obj = await created(chain)
    entry = record_decision(
        key=b"not-the-operators-key-0123456789",
        request_uid=obj["metadata"]["uid"],
        spec=obj["spec"],
        approver="bob",
        groups=BOB["groups"],
        decision="approve",
        at=datetime.now(UTC),
    )
    refused(
        await chain.update(
            NS, NAME, annotate(APPROVALS_ANNOTATION, json.dumps([entry.to_wire()])), userinfo=BOB
        ),
        "was not recorded by the jitgrant webhook for you (bob)",
    )


async def test_22_receipts_replayed_onto_a_recreated_request_with_the_same_name_are_refused(
    chain: AdmissionChain, runtime: WebhookRuntime
) -> None:
    await created(chain)
    assert (await chain.update(NS, NAME, annotate("jitgrant.dev/approve"), userinfo=ALICE)).allowed
    assert (await chain.update(NS, NAME, annotate("jitgrant.dev/approve"), userinfo=BOB)).allowed
    assert counted(chain, runtime).approved
    old_approvals = chain.get(NS, NAME)["metadata"]["annotations"][APPROVALS_ANNOTATION]
    del chain.store[(NS, NAME)]
    await created(chain)  # same name, same spec, same requester: a new uid
    refused(
        await chain.update(NS, NAME, annotate(APPROVALS_ANNOTATION, old_approvals), userinfo=ALICE),
        f"annotation {APPROVALS_ANNOTATION} is written only by the jitgrant webhook, one decision at a time",
    )
    fresh = chain.get(NS, NAME)
    fresh["metadata"]["annotations"][APPROVALS_ANNOTATION] = old_approvals
    chain.put(fresh)  # and with every webhook bypassed, the old receipts count for nothing
    result = counted(chain, runtime)
    assert not result.approved and len(result.ignored) == 2


async def test_23_deleting_the_approvals_annotation_is_refused(chain: AdmissionChain) -> None:
    await created(chain)
    assert (await chain.update(NS, NAME, annotate("jitgrant.dev/deny", "no"), userinfo=BOB)).allowed
    outcome = await chain.update(
        NS, NAME, lambda o: o["metadata"]["annotations"].pop(APPROVALS_ANNOTATION), userinfo=AGENT
    )
    refused(outcome, f"annotation {APPROVALS_ANNOTATION} is written only by the jitgrant webhook")


async def test_24_editing_a_recorded_reason_is_refused(chain: AdmissionChain) -> None:
    await created(chain)
    assert (await chain.update(NS, NAME, annotate("jitgrant.dev/deny", "risky"), userinfo=BOB)).allowed

    def soften(obj: dict[str, Any]) -> None:
        entries = json.loads(obj["metadata"]["annotations"][APPROVALS_ANNOTATION])
        entries[0]["decision"] = "approve"
        obj["metadata"]["annotations"][APPROVALS_ANNOTATION] = json.dumps(entries)

    refused(await chain.update(NS, NAME, soften, userinfo=BOB), "is written only by the jitgrant webhook")


async def test_25_approve_and_deny_together_are_refused(chain: AdmissionChain) -> None:
    await created(chain)

    def both(obj: dict[str, Any]) -> None:
        obj["metadata"].setdefault("annotations", {}).update(
            {"jitgrant.dev/approve": "", "jitgrant.dev/deny": ""}
        )

    refused(
        await chain.update(NS, NAME, both, userinfo=ALICE),
        "set either jitgrant.dev/approve or jitgrant.dev/deny, not both",
        code=400,
    )


async def test_26_approval_annotation_with_the_mutating_webhook_bypassed_is_refused(
    chain: AdmissionChain,
) -> None:
    await created(chain)
    chain.mutating = False
    refused(
        await chain.update(NS, NAME, annotate("jitgrant.dev/approve"), userinfo=ALICE),
        "annotation jitgrant.dev/approve was not recorded: "
        "the jitgrant mutating webhook (stamp-requester) did not run",
    )


# --- when decisions are taken ----------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["Denied", "TimedOut", "Expired", "Revoked", "Failed"])
async def test_27_approving_a_terminal_request_is_refused(chain: AdmissionChain, phase: str) -> None:
    obj = await created(chain)
    obj["status"] = {"phase": phase}
    chain.put(obj)
    refused(
        await chain.update(NS, NAME, annotate("jitgrant.dev/approve"), userinfo=ALICE),
        f"request is {phase}; decisions are taken only while it is Pending",
    )


async def test_28_approving_an_active_grant_is_refused_and_points_at_revoke(chain: AdmissionChain) -> None:
    obj = await created(chain)
    obj["status"] = {"phase": "Active"}
    chain.put(obj)
    refused(
        await chain.update(NS, NAME, annotate("jitgrant.dev/deny"), userinfo=ALICE),
        "request is Active; decisions are taken only while it is Pending (to end an active grant, annotate "
        "jitgrant.dev/revoke=<reason>)",
    )


async def test_29_approving_after_a_deny_is_refused(chain: AdmissionChain) -> None:
    await created(chain)
    assert (await chain.update(NS, NAME, annotate("jitgrant.dev/deny", "no"), userinfo=BOB)).allowed
    refused(
        await chain.update(NS, NAME, annotate("jitgrant.dev/approve"), userinfo=CAROL),
        "request was already denied by bob",
    )


async def test_30_approving_under_a_policy_that_does_not_exist_is_refused(
    chain: AdmissionChain, runtime: WebhookRuntime
) -> None:
    await created(chain, request_body(NAME, policy="prod"))
    del runtime.policies["prod"]  # deleted after the request was filed
    refused(
        await chain.update(NS, NAME, annotate("jitgrant.dev/approve"), userinfo=ALICE),
        "GrantPolicy prod not found; nobody can approve a request under it",
    )


async def test_30b_a_request_under_a_policy_that_does_not_exist_is_never_stored(
    chain: AdmissionChain,
) -> None:
    """Issue 24 §5: refused at admission with the words of its dry run (it was stored, then Denied)."""
    message = "PolicyNotFound: GrantPolicy 'ghost' does not exist; ask the platform team which to use"
    dry = await chain.create(request_body(NAME, policy="ghost"), userinfo=AGENT, dry_run=True)
    assert not dry.allowed and dry.message.startswith(f"jitgrant.dev/dry-run: {message}"), dry.message
    real = await chain.create(request_body(NAME, policy="ghost"), userinfo=AGENT)
    assert not real.allowed and real.message == dry.message.removeprefix("jitgrant.dev/dry-run: ")
    assert (NS, NAME) not in chain.store


async def test_31_an_overlong_reason_is_refused(chain: AdmissionChain) -> None:
    await created(chain)
    refused(
        await chain.update(NS, NAME, annotate("jitgrant.dev/approve", "x" * 2000), userinfo=ALICE),
        "annotation jitgrant.dev/approve is 2000 characters; a reason of at most 1024 is accepted",
        code=400,
    )


# --- the operator's own metadata and status -----------------------------------------------------------------


async def test_32_removing_the_finalizer_is_refused_for_anyone_but_the_operator(
    chain: AdmissionChain,
) -> None:
    await created(chain)
    add = await chain.update(
        NS,
        NAME,
        lambda o: o["metadata"].setdefault("finalizers", []).append("jitgrant.dev/revoke-grant"),
        userinfo=OPERATOR,
    )
    assert add.allowed
    lookalike = user("system:serviceaccount:jitgrant-system:jitgrant-evil", "system:serviceaccounts")
    for who in (AGENT, lookalike):
        refused(
            await chain.update(NS, NAME, lambda o: o["metadata"]["finalizers"].clear(), userinfo=who),
            "only the jitgrant operator removes the finalizer jitgrant.dev/revoke-grant",
        )


async def test_33_forging_the_operators_progress_annotations_is_refused(chain: AdmissionChain) -> None:
    await created(chain)
    refused(
        await chain.update(NS, NAME, annotate("jitgrant.dev/reconcile", '{"success": true}'), userinfo=AGENT),
        "annotation jitgrant.dev/reconcile belongs to the jitgrant operator and cannot be changed by you",
    )


async def test_34_writing_status_is_refused_for_anyone_but_the_operator(chain: AdmissionChain) -> None:
    await created(chain)
    refused(
        await chain.update_status(NS, NAME, {"phase": "Approved"}, userinfo=AGENT),
        "status of an AccessRequest is written only by the jitgrant operator",
    )


async def test_35_pre_seeding_approvals_or_operator_annotations_at_creation_is_refused(
    chain: AdmissionChain,
) -> None:
    for name in (APPROVALS_ANNOTATION, "jitgrant.dev/approve", "jitgrant.dev/reconcile"):
        body = request_body(NAME)
        body["metadata"]["annotations"] = {name: "[]"}
        refused(
            await chain.create(body, userinfo=AGENT),
            f"annotation {name} cannot be set when creating an AccessRequest",
        )


async def test_36_a_token_added_later_is_refused_so_it_is_never_stored(
    chain: AdmissionChain, issuer: LocalIssuer
) -> None:
    await created(chain)
    refused(
        await chain.update(NS, NAME, annotate("jitgrant.dev/oidc-token", issuer.mint()), userinfo=AGENT),
        "annotation jitgrant.dev/oidc-token is only read at creation and must never be stored",
    )


# --- OIDC through the webhook ----------------------------------------------------------------------


def with_token(token: str) -> dict[str, Any]:
    body = request_body(NAME)
    body["metadata"]["annotations"] = {"jitgrant.dev/oidc-token": token}
    return body


async def test_37_token_from_an_issuer_the_policy_does_not_name_is_refused(
    chain: AdmissionChain, issuer: LocalIssuer
) -> None:
    token = issuer.mint(iss="https://accounts.google.com")
    refused(
        await chain.create(with_token(token), userinfo=AGENT),
        "OIDC token refused: issuer 'https://accounts.google.com' is not named by policy prod "
        f"(named: {issuer.url})",
    )


async def test_38_valid_token_for_a_subject_the_policy_does_not_list_is_refused(
    chain: AdmissionChain, issuer: LocalIssuer
) -> None:
    refused(
        await chain.create(with_token(issuer.mint(sub="intern-bot", groups=["interns"])), userinfo=AGENT),
        f"OIDC token refused: subject 'intern-bot' of issuer {issuer.url} is not a requester of policy prod "
        "(allowed subjects: agent-7; groups in claim 'groups': release)",
    )


async def test_39_badly_signed_token_is_refused_through_the_webhook(
    chain: AdmissionChain, issuer: LocalIssuer
) -> None:
    refused(
        await chain.create(with_token(issuer.mint(kid="rsa-1", key=rsa_key("attacker"))), userinfo=AGENT),
        "OIDC token refused: signature verification failed",
    )


async def test_40_alg_none_token_is_refused_through_the_webhook(
    chain: AdmissionChain, issuer: LocalIssuer
) -> None:
    token = unsigned_token(issuer.claims(), header={"alg": "none", "kid": "rsa-1"})
    refused(
        await chain.create(with_token(token), userinfo=AGENT),
        "OIDC token refused: algorithm 'none' is not allowed",
    )


async def test_41_hmac_with_the_public_key_is_refused_through_the_webhook(
    chain: AdmissionChain, issuer: LocalIssuer
) -> None:
    token = hmac_token(issuer.claims(), secret=issuer.public_pem(), kid="rsa-1")
    refused(
        await chain.create(with_token(token), userinfo=AGENT),
        "OIDC token refused: algorithm 'HS256' is not allowed",
    )


async def test_42_replayed_token_is_refused_through_the_webhook(
    chain: AdmissionChain, issuer: LocalIssuer
) -> None:
    token = issuer.mint()
    await created(chain, with_token(token))
    again = copy.deepcopy(with_token(token))
    again["metadata"]["name"] = "second"
    refused(
        await chain.create(again, userinfo=AGENT),
        "OIDC token refused: token was already used (replayed 'jti')",
    )


async def test_43_expired_token_is_refused_through_the_webhook(
    chain: AdmissionChain, issuer: LocalIssuer
) -> None:
    token = issuer.mint(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200, nbf=None)
    refused(await chain.create(with_token(token), userinfo=AGENT), "OIDC token refused: token expired at")


async def test_44_token_for_another_audience_is_refused_through_the_webhook(
    chain: AdmissionChain, issuer: LocalIssuer
) -> None:
    refused(
        await chain.create(with_token(issuer.mint(aud="kubernetes")), userinfo=AGENT),
        "OIDC token refused: audience 'kubernetes' does not include 'jitgrant'",
    )


async def test_45_kubectl_apply_does_not_leave_the_token_in_last_applied_configuration(
    chain: AdmissionChain, issuer: LocalIssuer
) -> None:
    token = issuer.mint()
    body = with_token(token)
    manifest = copy.deepcopy(body)
    body["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = (
        json.dumps(manifest) + "\n"
    )
    obj = await created(chain, body)
    assert token not in json.dumps(obj)
    last_applied = json.loads(
        obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert last_applied["spec"] == manifest["spec"]


async def test_46_a_token_smuggled_into_last_applied_configuration_later_is_refused(
    chain: AdmissionChain, issuer: LocalIssuer
) -> None:
    await created(chain)
    leaked = json.dumps({"metadata": {"annotations": {"jitgrant.dev/oidc-token": issuer.mint()}}})
    refused(
        await chain.update(
            NS, NAME, annotate("kubectl.kubernetes.io/last-applied-configuration", leaked), userinfo=AGENT
        ),
        "annotation jitgrant.dev/oidc-token is only read at creation and must never be stored",
    )
