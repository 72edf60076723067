"""Requester matching: Kubernetes identities and OIDC identities, and never one for the other."""

from __future__ import annotations

from typing import Any

from jitgrant.models import ProofKind, RequesterStamp

from .builders import AGENT, ISSUER, check, kube, oidc, policy, request

K8S_AND_OIDC: dict[str, Any] = {
    "serviceAccounts": [{"namespace": "ops", "name": "oncall-agent"}],
    "users": ["alice@example.com"],
    "groups": ["sre"],
    "oidc": [
        {
            "issuer": ISSUER,
            "audience": "jitgrant",
            "subjects": ["repo:shop/checkout"],
            "groups": ["deployers"],
        }
    ],
}


def decide_for(requester: RequesterStamp, requesters: dict[str, Any] = K8S_AND_OIDC) -> tuple[str, ...]:
    return check(policy(requesters=requesters), request(), requester=requester).reasons


def test_service_account_matches_by_its_username() -> None:
    assert decide_for(kube(AGENT)) == ()


def test_service_account_of_another_namespace_does_not_match() -> None:
    reasons = decide_for(kube("system:serviceaccount:dev:oncall-agent"))
    assert reasons == (
        "requester 'system:serviceaccount:dev:oncall-agent' is not among the requesters of policy "
        "oncall-restart (allowed: serviceAccounts ops/oncall-agent; users alice@example.com; groups sre)",
    )


def test_user_matches_exactly() -> None:
    assert decide_for(kube("alice@example.com")) == ()
    assert decide_for(kube("Alice@example.com")) != ()


def test_group_membership_matches() -> None:
    assert decide_for(kube("bob", "system:authenticated", "sre")) == ()


def test_unknown_user_names_its_groups_in_the_reason() -> None:
    reasons = decide_for(kube("bob", "dev"))
    assert reasons[0].startswith("requester 'bob' (groups: dev) is not among the requesters")


def test_oidc_subject_matches_under_its_issuer() -> None:
    assert decide_for(oidc("repo:shop/checkout")) == ()


def test_oidc_group_from_the_token_matches() -> None:
    assert decide_for(oidc("repo:shop/other", "deployers")) == ()


def test_oidc_from_an_untrusted_issuer_names_the_trusted_ones() -> None:
    reasons = decide_for(oidc("repo:shop/checkout", issuer="https://evil.example.com"))
    assert reasons == (
        "OIDC issuer 'https://evil.example.com' is not trusted by policy oncall-restart "
        f"(allowed issuers: {ISSUER})",
    )


def test_oidc_issuer_must_match_exactly() -> None:
    assert decide_for(oidc("repo:shop/checkout", issuer=ISSUER + "/")) != ()


def test_oidc_subject_not_listed_names_who_this_issuer_admits() -> None:
    reasons = decide_for(oidc("repo:shop/cart", "readers"))
    assert reasons == (
        f"OIDC subject 'repo:shop/cart' of issuer '{ISSUER}' (groups: readers) is not among the requesters "
        "of policy oncall-restart (allowed for this issuer: subjects repo:shop/checkout; groups deployers)",
    )


def test_oidc_entry_naming_nobody_admits_nobody() -> None:
    requesters = {"oidc": [{"issuer": ISSUER, "audience": "jitgrant"}]}
    reasons = decide_for(oidc("anyone"), requesters)
    assert reasons[0].endswith("(allowed for this issuer: nobody (the entry names no subjects or groups))")


def test_oidc_identity_never_matches_kubernetes_entries() -> None:
    # Same name as the user, same group as the Kubernetes group: still not a Kubernetes identity.
    stamp = RequesterStamp(
        username="alice@example.com",
        groups=("sre",),
        proven_by=ProofKind.OIDC,
        issuer=ISSUER,
        subject="alice@example.com",
    )
    reasons = decide_for(stamp)
    assert len(reasons) == 1 and reasons[0].startswith("OIDC subject 'alice@example.com'")


def test_oidc_identity_under_a_kubernetes_only_policy_is_told_so() -> None:
    reasons = decide_for(oidc("repo:shop/checkout"), {"users": ["alice@example.com"]})
    assert reasons == (
        f"OIDC issuer '{ISSUER}' is not trusted by policy oncall-restart "
        "(it accepts only Kubernetes identities: users alice@example.com)",
    )


def test_kubernetes_identity_never_matches_oidc_entries() -> None:
    # A Kubernetes user whose name and groups equal an OIDC subject and group is not that subject.
    reasons = decide_for(kube("repo:shop/checkout", "deployers"), {"oidc": K8S_AND_OIDC["oidc"]})
    assert reasons == (
        "requester 'repo:shop/checkout' (groups: deployers) is not among the requesters of policy "
        f"oncall-restart (it accepts only OIDC tokens from {ISSUER})",
    )


def test_oidc_stamp_without_subject_matches_nothing() -> None:
    stamp = RequesterStamp(username="x", proven_by=ProofKind.OIDC, issuer=ISSUER, groups=("deployers",))
    reasons = decide_for(stamp)
    assert reasons == ("the OIDC proof of requester 'x' has no issuer or subject, so it matches no policy",)


def test_empty_username_and_group_never_match() -> None:
    requesters = {"users": [""], "groups": [""]}
    assert decide_for(kube("", ""), requesters) != ()
