"""Issue 11 §5: every path to persistence or escalation on the Kubernetes RBAC good-practices page is
dangerous: a policy wildcard never grants it, naming it literally does; and a ClusterRole edited after
the policy was written is refused at grant time (`ClusterRoleWidened`) unless the policy accepts it."""

from __future__ import annotations

from typing import Any

import pytest

from jitgrant.models import PolicyRule
from jitgrant.policy import check_policy, rules_of, widened_reason

from .builders import check, policy, rule, rules_policy, rules_request

RBAC = "rbac.authorization.k8s.io"
ADMISSION = "admissionregistration.k8s.io"
EVERYTHING = rule(["*"], ["*"], groups=["*"])

# One entry per item of the issue's list, as an agent would ask for it.
NEWLY_DANGEROUS = [
    pytest.param(rule(["roles"], ["create"], groups=[RBAC]), id="create-roles"),
    pytest.param(rule(["rolebindings"], ["create"], groups=[RBAC]), id="create-rolebindings"),
    pytest.param(rule(["roles"], ["update"], groups=[RBAC]), id="update-roles"),
    pytest.param(rule(["rolebindings"], ["patch"], groups=[RBAC]), id="patch-rolebindings"),
    pytest.param(rule(["clusterroles"], ["create"], groups=[RBAC]), id="create-clusterroles"),
    pytest.param(rule(["clusterrolebindings"], ["update"], groups=[RBAC]), id="update-clusterrolebindings"),
    pytest.param(rule(["pods/ephemeralcontainers"], ["patch"]), id="ephemeralcontainers"),
    pytest.param(rule(["pods/proxy"], ["get"]), id="pods-proxy"),
    pytest.param(rule(["services/proxy"], ["get"]), id="services-proxy"),
    pytest.param(
        rule(["certificatesigningrequests"], ["create"], groups=["certificates.k8s.io"]), id="csr-create"
    ),
    pytest.param(
        rule(["certificatesigningrequests/approval"], ["update"], groups=["certificates.k8s.io"]),
        id="csr-approval",
    ),
    pytest.param(rule(["signers"], ["approve"], groups=["certificates.k8s.io"]), id="signers-approve"),
    pytest.param(rule(["mutatingwebhookconfigurations"], ["patch"], groups=[ADMISSION]), id="mutating-wh"),
    pytest.param(
        rule(["validatingwebhookconfigurations"], ["delete"], groups=[ADMISSION]), id="validating-wh"
    ),
    pytest.param(rule(["validatingadmissionpolicies"], ["create"], groups=[ADMISSION]), id="vap"),
    pytest.param(rule(["validatingadmissionpolicybindings"], ["delete"], groups=[ADMISSION]), id="vapb"),
    pytest.param(rule(["customresourcedefinitions"], ["create"], groups=["apiextensions.k8s.io"]), id="crds"),
    pytest.param(rule(["persistentvolumes"], ["create"]), id="persistentvolumes"),
    pytest.param(rule(["namespaces"], ["delete"]), id="namespaces-delete"),
]
ALREADY_DANGEROUS = [
    pytest.param(rule(["serviceaccounts/token"], ["create"]), id="sa-token"),
    pytest.param(rule(["pods/exec"], ["create"]), id="exec"),
    pytest.param(rule(["pods/attach"], ["create"]), id="attach"),
    pytest.param(rule(["pods/portforward"], ["create"]), id="portforward"),
    pytest.param(rule(["nodes/proxy"], ["get"]), id="nodes-proxy"),
    pytest.param(rule(["users"], ["impersonate"]), id="impersonate"),
    pytest.param(rule(["clusterroles"], ["bind"], groups=[RBAC]), id="bind"),
    pytest.param(rule(["roles"], ["escalate"], groups=[RBAC]), id="escalate"),
    pytest.param(rule(["secrets"], ["list"]), id="secrets"),
]


@pytest.mark.parametrize("requested", NEWLY_DANGEROUS + ALREADY_DANGEROUS)
def test_a_policy_allowing_wildcards_does_not_grant_it(requested: dict[str, Any]) -> None:
    decision = check(rules_policy(EVERYTHING), rules_request(requested))
    assert not decision.allowed
    [reason] = decision.reasons
    assert "is dangerous and policy oncall-restart covers it only through a wildcard" in reason


@pytest.mark.parametrize("requested", NEWLY_DANGEROUS + ALREADY_DANGEROUS)
def test_naming_it_literally_is_the_opt_in(requested: dict[str, Any]) -> None:
    assert check(rules_policy(requested), rules_request(requested)).allowed


def test_the_issue_example_create_roles_and_rolebindings_under_a_wildcard_policy() -> None:
    decision = check(
        rules_policy(EVERYTHING),
        rules_request(rule(["roles", "rolebindings"], ["create"], groups=[RBAC])),
    )
    assert decision.reasons == (
        "verb 'create' on roles.rbac.authorization.k8s.io is dangerous and policy oncall-restart covers it "
        "only through a wildcard; it is granted only where a policy rule names resource 'roles' with verb "
        "'create' (create writes RBAC that outlives the grant) literally",
        "verb 'create' on rolebindings.rbac.authorization.k8s.io is dangerous and policy oncall-restart "
        "covers it only through a wildcard; it is granted only where a policy rule names resource "
        "'rolebindings' with verb 'create' (create writes RBAC that outlives the grant) literally",
    )


def test_naming_roles_with_a_wildcard_verb_does_not_opt_in_to_create() -> None:
    decision = check(
        rules_policy(rule(["roles"], ["*"], groups=[RBAC])),
        rules_request(rule(["roles"], ["create"], groups=[RBAC])),
    )
    assert not decision.allowed


def test_reading_rbac_or_deleting_a_binding_stays_ordinary() -> None:
    harmless = rule(["roles", "rolebindings"], ["get", "list", "delete"], groups=[RBAC])
    assert check(rules_policy(EVERYTHING), rules_request(harmless)).allowed
    assert check(rules_policy(EVERYTHING), rules_request(rule(["namespaces"], ["get"]))).allowed


# --- a ClusterRole edited after the policy was written ----------------------------------------------

NARROW = {"rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]}]}
WIDENED = {
    "rules": [
        *NARROW["rules"],
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {"nonResourceURLs": ["/healthz"], "verbs": ["get"]},
    ]
}


def role_policy(**option: Any) -> Any:
    return policy(grants=[{"clusterRole": "jit-restart-deployments", **option}])


def test_the_live_rules_of_a_narrow_cluster_role_pass() -> None:
    assert (
        widened_reason(
            policy_name="p",
            policy=role_policy(),
            cluster_role="jit-restart-deployments",
            rules=rules_of(NARROW),
        )
        is None
    )


def test_a_cluster_role_that_gained_get_secrets_is_refused_naming_what_and_the_fix() -> None:
    reason = widened_reason(
        policy_name="oncall-restart",
        policy=role_policy(),
        cluster_role="jit-restart-deployments",
        rules=rules_of(WIDENED),
    )
    assert reason == (
        "ClusterRole 'jit-restart-deployments' holds dangerous permissions policy oncall-restart does not "
        "accept: resource 'secrets' (verbs get: exposes credentials). Narrow the ClusterRole, or add "
        "[secrets] to acceptDangerous of its grants entry in policy oncall-restart if the platform team "
        "means to grant them"
    )


def test_accepting_the_entry_is_the_opt_in() -> None:
    spec = role_policy(acceptDangerous=["secrets"])
    assert check_policy(spec.model_dump(by_alias=True, mode="json")).valid
    reason = widened_reason(
        policy_name="p", policy=spec, cluster_role="jit-restart-deployments", rules=rules_of(WIDENED)
    )
    assert reason is None


def test_a_wildcard_cluster_role_needs_the_wildcard_accepted() -> None:
    admin = rules_of({"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]})
    reason = widened_reason(
        policy_name="p", policy=role_policy(), cluster_role="jit-restart-deployments", rules=admin
    )
    assert reason is not None and "apiGroup '*'" in reason and "verb '*'" in reason
    accepted = role_policy(acceptDangerous=["*"])
    assert (
        widened_reason(policy_name="p", policy=accepted, cluster_role="jit-restart-deployments", rules=admin)
        is None
    )


def test_non_resource_rules_are_not_what_a_role_binding_grants() -> None:
    assert rules_of({"rules": [{"nonResourceURLs": ["*"], "verbs": ["*"]}]}) == ()
    assert rules_of(NARROW) == (
        PolicyRule(api_groups=("apps",), resources=("deployments",), verbs=("get", "patch")),
    )
