"""What the operator's ServiceAccount can do on a real kube-apiserver, with the chart's RBAC and admission
policy installed as rendered (install.md, "What the operator can do").

1. Its effective rights, as the API server itself reports them (SelfSubjectRulesReview with the
   operator's own token, in every namespace that matters), equal the table in docs/install.md
   ("What the operator can do"), read from that page: a verb too many or too few fails.
2. SelfSubjectAccessReview probes ("kubectl auth can-i") for the takeover paths say no, and for the
   operator's own work say yes (so the probe can tell).
3. Each attack from the issue, tried with the operator's token, is refused, and the API server's
   reason is shown: mint a token for a kube-system ServiceAccount, read a kube-system Secret, plant a
   Role and a RoleBinding in kube-system, rewrite the kube-controller-manager's leader Lease, delete a
   foreign RoleBinding in default.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import (
    ApiClient,
    AuthorizationV1Api,
    CoordinationV1Api,
    CoreV1Api,
    RbacAuthorizationV1Api,
)
from kubernetes.client.exceptions import ApiException

from jitgrant.models.vocabulary import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from jitgrant_testing.environment import GRANTS_NAMESPACE, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT
from jitgrant_testing.realenv import RealEnvironment

INSTALL_MD = Path(__file__).resolve().parents[2] / "docs" / "install.md"
Atom = tuple[str, str, str, str]  # (apiGroup, resource, verb, resourceName); "" name = any
SCOPES = {"cluster": "", "grants namespace": GRANTS_NAMESPACE, "operator namespace": OPERATOR_NAMESPACE}
# Where the rights are listed: the protected namespaces, a bystander, the grant and request
# namespaces, the grants namespace and the operator's own.
NAMESPACES = (
    "kube-system",
    "kube-public",
    "default",
    "payments",
    "agents",
    GRANTS_NAMESPACE,
    OPERATOR_NAMESPACE,
)
LABELS = {MANAGED_BY_LABEL: MANAGED_BY_VALUE}
# What every authenticated identity may GET (system:discovery, system:public-info-viewer,
# system:service-account-issuer-discovery), nothing of the operator's own.
DISCOVERY_URLS = {
    "/.well-known/openid-configuration",
    "/.well-known/openid-configuration/",
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/openid/v1/jwks",
    "/openid/v1/jwks/",
    "/readyz",
    "/version",
    "/version/",
}


def documented_rights(grantable: tuple[str, ...]) -> dict[str, set[Atom]]:
    """docs/install.md's table, by scope ("" = cluster-wide; else a namespace)."""
    text = INSTALL_MD.read_text()
    table = text.split("<!-- operator-rights:begin -->")[1].split("<!-- operator-rights:end -->")[0]
    rights: dict[str, set[Atom]] = {}
    for line in table.strip().splitlines()[2:]:
        where, group, resource, verbs, names = (cell.strip() for cell in line.strip("|").split("|"))
        scope = SCOPES[where.split(",")[0]]
        group = "" if group == "core" else group
        if names.startswith("any"):
            resource_names: tuple[str, ...] = ("",)
        elif names == "grantableClusterRoles":
            resource_names = grantable
        else:
            resource_names = tuple(n.strip() for n in names.split(","))
        rights.setdefault(scope, set()).update(
            (group, resource, verb.strip(), name) for verb in verbs.split(",") for name in resource_names
        )
    return rights


def expected_in(namespace: str, documented: dict[str, set[Atom]]) -> set[Atom]:
    return documented[""] | documented.get(namespace, set())


def effective_rights(operator: ApiClient, namespace: str) -> tuple[set[Atom], set[tuple[str, str]]]:
    """SelfSubjectRulesReview: the resource rules (as atoms) and non-resource rules (verb, URL)."""
    review = AuthorizationV1Api(operator).create_self_subject_rules_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": namespace},
        }
    )
    assert not review.status.incomplete, review.status.evaluation_error
    atoms: set[Atom] = set()
    for rule in review.status.resource_rules:
        for group in rule.api_groups or [""]:
            for resource in rule.resources or []:
                for verb in rule.verbs:
                    for name in rule.resource_names or [""]:
                        atoms.add((group, resource, verb, name))
    urls = {
        (verb, url)
        for rule in review.status.non_resource_rules
        for verb in rule.verbs
        for url in rule.non_resource_urls
    }
    return atoms, urls


def describe(atoms: set[Atom]) -> list[str]:
    return sorted(
        f"{verb} {group or 'core'}/{resource}{'/' + name if name else ''}"
        for group, resource, verb, name in atoms
    )


def refused(call: Callable[[], Any]) -> str:
    """The API server's 403 message for `call` (fails if it is allowed or fails otherwise)."""
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 403, caught.value.body
    message: str = json.loads(caught.value.body)["message"]
    return message


@pytest.fixture(scope="module")
def operator(real_env: RealEnvironment) -> Iterator[ApiClient]:
    """A client with a token of the operator's own ServiceAccount, as a thief would hold it."""
    yield real_env.client_for_service_account(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT)


def test_the_operator_s_effective_rights_are_exactly_the_documented_ones(
    real_env: RealEnvironment, operator: ApiClient
) -> None:
    documented = documented_rights(tuple(real_env.grantable_cluster_roles))
    assert set(documented) == {"", GRANTS_NAMESPACE, OPERATOR_NAMESPACE}
    for namespace in NAMESPACES:
        have, urls = effective_rights(operator, namespace)
        want = expected_in(namespace, documented)
        assert describe(have - want) == [], (
            f"in {namespace} the operator can do more than docs/install.md says"
        )
        assert describe(want - have) == [], f"in {namespace} the operator lacks what docs/install.md says"
        # Non-resource URLs: only the discovery and health endpoints every identity may GET.
        assert {verb for verb, _ in urls} == {"get"}, urls
        seen_urls = {url for _, url in urls}
        assert seen_urls == DISCOVERY_URLS, (
            f"extra {sorted(seen_urls - DISCOVERY_URLS)}, missing {sorted(DISCOVERY_URLS - seen_urls)}"
        )
    # The takeover rights, named: nowhere outside their namespaces.
    for namespace in ("kube-system", "default", "payments"):
        have, _ = effective_rights(operator, namespace)
        resources = {resource for _, resource, _, _ in have}
        assert not resources & {"secrets", "serviceaccounts", "serviceaccounts/token", "roles", "leases"}, (
            namespace
        )


CAN_NOT = [
    # (verb, group, resource, subresource, namespace, name)
    ("create", "", "serviceaccounts", "token", "kube-system", "clusterrole-aggregation-controller"),
    ("create", "", "serviceaccounts", "token", "default", "default"),
    ("get", "", "secrets", "", "kube-system", "any"),
    ("list", "", "secrets", "", "", ""),
    ("get", "", "secrets", "", OPERATOR_NAMESPACE, "jitgrant-receipt-key"),
    ("create", "", "serviceaccounts", "", "default", ""),
    ("create", "rbac.authorization.k8s.io", "roles", "", "kube-system", ""),
    ("create", "rbac.authorization.k8s.io", "roles", "", "default", ""),
    ("escalate", "rbac.authorization.k8s.io", "roles", "", "default", ""),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", "", "", "cluster-admin"),
    ("update", "rbac.authorization.k8s.io", "clusterroles", "", "", "jit-restart-checkout"),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", ""),
    ("update", "coordination.k8s.io", "leases", "", "kube-system", "kube-controller-manager"),
    ("get", "coordination.k8s.io", "leases", "", "kube-system", "kube-controller-manager"),
    ("update", "coordination.k8s.io", "leases", "", OPERATOR_NAMESPACE, "someone-elses"),
    ("impersonate", "", "users", "", "", "admin"),
    ("create", "", "pods", "exec", "kube-system", ""),
]
CAN = [
    ("create", "", "serviceaccounts", "token", GRANTS_NAMESPACE, "jit-something"),
    ("get", "", "secrets", "", GRANTS_NAMESPACE, "jit-something-kubeconfig"),
    ("update", "coordination.k8s.io", "leases", "", OPERATOR_NAMESPACE, "jitgrant-leader"),
    ("create", "rbac.authorization.k8s.io", "rolebindings", "", "payments", ""),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", "", "", "jit-restart-checkout"),
]


def can_i(
    operator: ApiClient, verb: str, group: str, resource: str, sub: str, namespace: str, name: str
) -> bool:
    attributes = {
        "verb": verb,
        "group": group,
        "resource": resource,
        "subresource": sub,
        "namespace": namespace,
        "name": name,
    }
    review = AuthorizationV1Api(operator).create_self_subject_access_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {k: v for k, v in attributes.items() if v}},
        }
    )
    return bool(review.status.allowed)


@pytest.mark.parametrize(
    "probe", CAN_NOT, ids=lambda p: f"{p[0]}-{p[2]}{'/' + p[3] if p[3] else ''}-{p[4] or 'cluster'}"
)
def test_auth_can_i_says_no_to_the_takeover_paths(operator: ApiClient, probe: tuple[str, ...]) -> None:
    assert not can_i(operator, *probe)


@pytest.mark.parametrize(
    "probe", CAN, ids=lambda p: f"{p[0]}-{p[2]}{'/' + p[3] if p[3] else ''}-{p[4] or 'cluster'}"
)
def test_auth_can_i_says_yes_to_the_operator_s_own_work(operator: ApiClient, probe: tuple[str, ...]) -> None:
    assert can_i(operator, *probe)


# --- the attacks of install.md's "What a stolen operator token allows", with the operator's token -----------


def test_minting_a_token_for_a_kube_system_service_account_is_refused(
    real_env: RealEnvironment, operator: ApiClient
) -> None:
    core = CoreV1Api(real_env.admin)
    try:
        core.create_namespaced_service_account(
            "kube-system", {"metadata": {"name": "jitgrant-rights-victim"}}
        )
        message = refused(
            lambda: CoreV1Api(operator).create_namespaced_service_account_token(
                "jitgrant-rights-victim", "kube-system", {"spec": {"expirationSeconds": 600}}
            )
        )
        print(f"token for kube-system/jitgrant-rights-victim: {message}")
        assert 'cannot create resource "serviceaccounts/token"' in message
    finally:
        core.delete_namespaced_service_account("jitgrant-rights-victim", "kube-system")


def test_reading_a_kube_system_secret_is_refused(real_env: RealEnvironment, operator: ApiClient) -> None:
    core = CoreV1Api(real_env.admin)
    core.create_namespaced_secret(
        "kube-system", {"metadata": {"name": "jitgrant-rights-victim"}, "stringData": {"k": "v"}}
    )
    try:
        message = refused(
            lambda: CoreV1Api(operator).read_namespaced_secret("jitgrant-rights-victim", "kube-system")
        )
        print(f"read kube-system secret: {message}")
        assert 'cannot get resource "secrets"' in message
        listing = refused(lambda: CoreV1Api(operator).list_secret_for_all_namespaces())
        print(f"list every secret: {listing}")
    finally:
        core.delete_namespaced_secret("jitgrant-rights-victim", "kube-system")


def _binding(
    name: str, *, labels: dict[str, str] | None = None, role: str = "jit-restart-checkout"
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, **({"labels": labels} if labels else {})},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}],
    }


def test_planting_a_role_or_role_binding_in_kube_system_is_refused(operator: ApiClient) -> None:
    rbac = RbacAuthorizationV1Api(operator)
    role = {
        "metadata": {"name": "jitgrant-planted", "labels": LABELS},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
    }
    message = refused(lambda: rbac.create_namespaced_role("kube-system", role))
    print(f"Role in kube-system: {message}")
    assert 'cannot create resource "roles"' in message
    # RBAC lets it create RoleBindings to the allowlist; the admission policy refuses kube-system,
    # even for a binding labelled as jitgrant's.
    message = refused(
        lambda: rbac.create_namespaced_role_binding(
            "kube-system", _binding("jitgrant-planted", labels=LABELS)
        )
    )
    print(f"RoleBinding in kube-system: {message}")
    assert "jitgrant admission policy" in message and "kube-system" in message
    for namespace in ("kube-public", "kube-node-lease", OPERATOR_NAMESPACE):
        assert "jitgrant admission policy" in refused(
            lambda ns=namespace: rbac.create_namespaced_role_binding(
                ns, _binding("jitgrant-planted", labels=LABELS)
            )
        )
    # Outside them, a binding for someone else that is not labelled as jitgrant's is refused too.
    message = refused(lambda: rbac.create_namespaced_role_binding("default", _binding("jitgrant-planted")))
    print(f"unlabelled RoleBinding in default: {message}")
    assert "labelled app.kubernetes.io/managed-by=jitgrant" in message
    # And a binding to anything outside the allowlist is RBAC's escalation refusal.
    message = refused(
        lambda: rbac.create_namespaced_role_binding(
            "default", _binding("jitgrant-planted", labels=LABELS, role="admin")
        )
    )
    assert "not currently held" in message or "cannot bind" in message


def test_rewriting_the_kube_controller_manager_leader_lease_is_refused(
    real_env: RealEnvironment, operator: ApiClient
) -> None:
    admin = CoordinationV1Api(real_env.admin)
    try:
        lease = admin.read_namespaced_lease("kube-controller-manager", "kube-system")
    except ApiException as exc:
        assert exc.status == 404
        lease = admin.create_namespaced_lease(
            "kube-system",
            {"metadata": {"name": "kube-controller-manager"}, "spec": {"holderIdentity": "kcm"}},
        )
    lease.spec.holder_identity = "mallory"
    coordination = CoordinationV1Api(operator)
    message = refused(
        lambda: coordination.replace_namespaced_lease("kube-controller-manager", "kube-system", lease)
    )
    print(f"rewrite kube-system/kube-controller-manager Lease: {message}")
    assert 'cannot update resource "leases"' in message
    refused(lambda: coordination.read_namespaced_lease("kube-controller-manager", "kube-system"))
    refused(lambda: coordination.delete_namespaced_lease("kube-controller-manager", "kube-system"))
    # In its own namespace, only the leader Lease may be updated.
    mine = CoordinationV1Api(real_env.admin).create_namespaced_lease(
        OPERATOR_NAMESPACE, {"metadata": {"name": "someone-elses"}, "spec": {"holderIdentity": "x"}}
    )
    try:
        mine.spec.holder_identity = "mallory"
        message = refused(
            lambda: coordination.replace_namespaced_lease("someone-elses", OPERATOR_NAMESPACE, mine)
        )
        assert 'cannot update resource "leases"' in message
    finally:
        CoordinationV1Api(real_env.admin).delete_namespaced_lease("someone-elses", OPERATOR_NAMESPACE)


def test_deleting_a_foreign_role_binding_in_default_is_refused(
    real_env: RealEnvironment, operator: ApiClient
) -> None:
    admin = RbacAuthorizationV1Api(real_env.admin)
    foreign = {
        "metadata": {"name": "jitgrant-rights-foreign"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "Group", "name": "developers", "apiGroup": "rbac.authorization.k8s.io"}],
    }
    admin.create_namespaced_role_binding("default", foreign)
    try:
        message = refused(
            lambda: RbacAuthorizationV1Api(operator).delete_namespaced_role_binding(
                "jitgrant-rights-foreign", "default"
            )
        )
        print(f"delete default/jitgrant-rights-foreign: {message}")
        assert "jitgrant admission policy" in message and "jitgrant-rights-foreign" in message
        assert admin.read_namespaced_role_binding("jitgrant-rights-foreign", "default")
    finally:
        admin.delete_namespaced_role_binding("jitgrant-rights-foreign", "default")


def test_what_a_stolen_token_still_allows_is_what_docs_install_md_says(operator: ApiClient) -> None:
    """The documented remainder, as a dry run: a RoleBinding labelled as jitgrant's, outside the
    protected namespaces, to an allowlisted ClusterRole (at most the allowlist, for anyone)."""
    rbac = RbacAuthorizationV1Api(operator)
    made = rbac.create_namespaced_role_binding(
        "default", _binding("jitgrant-stolen", labels=LABELS), dry_run="All"
    )
    assert made.role_ref.name == "jit-restart-checkout"
