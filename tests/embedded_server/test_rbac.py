"""RBAC as documented: rules, bindings, resourceNames, subresources, and privilege-escalation prevention."""

from __future__ import annotations

from typing import Any

import pytest

from embedkube import EmbeddedCluster, User

from .conftest import Raw

RBAC = "/apis/rbac.authorization.k8s.io/v1"
DEPLOY = "/apis/apps/v1/namespaces/payments/deployments"


def rule(
    groups: list[str], resources: list[str], verbs: list[str], names: list[str] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"apiGroups": groups, "resources": resources, "verbs": verbs}
    if names:
        out["resourceNames"] = names
    return out


def role(name: str, rules: list[dict[str, Any]], namespace: str | None = "payments") -> dict[str, Any]:
    kind = "Role" if namespace else "ClusterRole"
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta, "rules": rules}


def binding(
    name: str,
    role_kind: str,
    role_name: str,
    subjects: list[dict[str, Any]],
    namespace: str | None = "payments",
) -> dict[str, Any]:
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
        "subjects": subjects,
    }


def user(name: str) -> dict[str, str]:
    return {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def create(raw: Raw, obj: dict[str, Any], token: str | None = "") -> Any:
    ns = obj["metadata"].get("namespace")
    plural = {
        "Role": "roles",
        "ClusterRole": "clusterroles",
        "RoleBinding": "rolebindings",
        "ClusterRoleBinding": "clusterrolebindings",
    }[obj["kind"]]
    path = f"{RBAC}/namespaces/{ns}/{plural}" if ns else f"{RBAC}/{plural}"
    return raw.post(path, obj, token=token)


@pytest.fixture
def setup(cluster: EmbeddedCluster, raw: Raw) -> dict[str, str]:
    """Namespaces payments and staging with deployments checkout and ledger; users alice and bob."""
    for ns in ("payments", "staging"):
        raw.post("/api/v1/namespaces", {"metadata": {"name": ns}})
        for name in ("checkout", "ledger"):
            raw.post(
                f"/apis/apps/v1/namespaces/{ns}/deployments",
                {
                    "metadata": {"name": name},
                    "spec": {
                        "replicas": 1,
                        "selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}}},
                    },
                },
            )
    return {
        "alice": cluster.add_user(User("alice", groups=("oncall",))),
        "bob": cluster.add_user(User("bob")),
    }


def test_no_binding_no_access_but_discovery(raw: Raw, setup: dict[str, str]) -> None:
    alice = setup["alice"]
    assert raw.get("/apis", token=alice).status == 200
    assert raw.get("/apis/apps/v1", token=alice).status == 200
    reply = raw.get("/api/v1/namespaces/default/configmaps", token=alice)
    assert (reply.status, reply.reason) == (403, "Forbidden")
    assert reply.message == (
        'configmaps is forbidden: User "alice" cannot list resource "configmaps" '
        'in API group "" in the namespace "default"'
    )
    assert reply.body["details"] == {"kind": "configmaps"}
    cluster_scope = raw.get("/api/v1/namespaces", token=alice)
    assert cluster_scope.message.endswith(
        'cannot list resource "namespaces" in API group "" at the cluster scope'
    )
    path = raw.get("/metrics", token=alice)
    assert (path.status, path.message) == (403, 'forbidden: User "alice" cannot get path "/metrics"')


def test_role_with_resource_names(raw: Raw, setup: dict[str, str]) -> None:
    alice = setup["alice"]
    create(
        raw,
        role(
            "restart",
            [rule(["apps"], ["deployments"], ["get", "patch", "create", "list", "watch"], ["checkout"])],
        ),
    )
    create(raw, binding("alice-restart", "Role", "restart", [user("alice")]))
    assert raw.patch(f"{DEPLOY}/checkout", {"spec": {"replicas": 2}}, token=alice).status == 200
    denied = raw.patch(f"{DEPLOY}/ledger", {"spec": {"replicas": 2}}, token=alice)
    assert denied.status == 403
    assert denied.message == (
        'deployments.apps "ledger" is forbidden: User "alice" cannot patch resource '
        '"deployments" in API group "apps" in the namespace "payments"'
    )
    assert denied.body["details"] == {"name": "ledger", "group": "apps", "kind": "deployments"}
    assert raw.get("/apis/apps/v1/namespaces/staging/deployments/checkout", token=alice).status == 403
    # list, watch and create name no object: resourceNames cannot allow them ...
    assert raw.get(DEPLOY, token=alice).status == 403
    assert raw.post(DEPLOY, {"metadata": {"name": "checkout2"}}, token=alice).status == 403
    # ... unless a list or watch is narrowed to the name by a field selector
    assert raw.get(f"{DEPLOY}?fieldSelector=metadata.name%3Dcheckout", token=alice).status == 200
    assert raw.get(f"{DEPLOY}?fieldSelector=metadata.name%3Dledger", token=alice).status == 403
    watched = raw.get(
        f"{DEPLOY}?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3Dcheckout", token=alice
    )
    assert watched.status == 200


def test_subresources_need_their_own_rules(raw: Raw, setup: dict[str, str]) -> None:
    alice, bob = setup["alice"], setup["bob"]
    create(raw, role("deploy-only", [rule(["apps"], ["deployments"], ["get", "update", "patch"])]))
    create(raw, role("scale-only", [rule(["apps"], ["deployments/scale"], ["get", "update", "patch"])]))
    create(raw, binding("a", "Role", "deploy-only", [user("alice")]))
    create(raw, binding("b", "Role", "scale-only", [user("bob")]))
    assert raw.get(f"{DEPLOY}/checkout", token=alice).status == 200
    scale = raw.get(f"{DEPLOY}/checkout/scale", token=alice)
    assert scale.status == 403
    assert 'cannot get resource "deployments/scale" in API group "apps"' in scale.message
    assert raw.get(f"{DEPLOY}/checkout", token=bob).status == 403
    reply = raw.patch(f"{DEPLOY}/checkout/scale", {"spec": {"replicas": 5}}, token=bob)
    assert reply.status == 200 and reply.body["kind"] == "Scale"
    assert raw.get(f"{DEPLOY}/checkout").body["spec"]["replicas"] == 5
    assert raw.get(f"{DEPLOY}/checkout/status", token=alice).status == 403


def test_star_subresource_and_wildcards(raw: Raw, setup: dict[str, str]) -> None:
    alice = setup["alice"]
    create(raw, role("any-scale", [rule(["*"], ["*/scale"], ["get"])]))
    create(raw, binding("a", "Role", "any-scale", [user("alice")]))
    assert raw.get(f"{DEPLOY}/checkout/scale", token=alice).status == 200
    assert raw.get(f"{DEPLOY}/checkout", token=alice).status == 403
    create(raw, role("everything", [rule(["*"], ["*"], ["*"])], namespace="staging"))
    create(raw, binding("b", "Role", "everything", [user("alice")], namespace="staging"))
    assert raw.delete("/apis/apps/v1/namespaces/staging/deployments/ledger", token=alice).status == 200
    assert raw.get("/api/v1/namespaces/payments/secrets", token=alice).status == 403


def test_cluster_role_via_role_binding_is_namespaced(raw: Raw, setup: dict[str, str]) -> None:
    alice = setup["alice"]
    create(raw, role("reader", [rule(["apps"], ["deployments"], ["get", "list"])], namespace=None))
    create(raw, binding("a", "ClusterRole", "reader", [user("alice")]))
    assert raw.get(DEPLOY, token=alice).status == 200
    assert raw.get("/apis/apps/v1/namespaces/staging/deployments", token=alice).status == 403
    assert raw.get("/apis/apps/v1/deployments", token=alice).status == 403
    create(raw, binding("all", "ClusterRole", "reader", [user("alice")], namespace=None))
    assert raw.get("/apis/apps/v1/deployments", token=alice).status == 200


def test_group_and_service_account_subjects(
    cluster: EmbeddedCluster, raw: Raw, setup: dict[str, str]
) -> None:
    create(raw, role("reader", [rule(["apps"], ["deployments"], ["get"])]))
    create(
        raw,
        binding(
            "oncall",
            "Role",
            "reader",
            [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "oncall"}],
        ),
    )
    assert raw.get(f"{DEPLOY}/checkout", token=setup["alice"]).status == 200
    assert raw.get(f"{DEPLOY}/checkout", token=setup["bob"]).status == 403
    raw.post("/api/v1/namespaces/payments/serviceaccounts", {"metadata": {"name": "agent"}})
    token = raw.post(
        "/api/v1/namespaces/payments/serviceaccounts/agent/token", {"spec": {"expirationSeconds": 600}}
    ).body["status"]["token"]
    assert raw.get(f"{DEPLOY}/checkout", token=token).status == 403
    # a ServiceAccount subject without namespace means the binding's namespace
    create(raw, binding("sa", "Role", "reader", [{"kind": "ServiceAccount", "name": "agent"}]))
    assert raw.get(f"{DEPLOY}/checkout", token=token).status == 200
    create(
        raw,
        binding(
            "sa-all",
            "Role",
            "reader",
            [{"kind": "Group", "name": "system:serviceaccounts:payments"}],
            namespace="staging",
        ),
    )
    create(raw, role("reader", [rule(["apps"], ["deployments"], ["get"])], namespace="staging"))
    assert raw.get("/apis/apps/v1/namespaces/staging/deployments/checkout", token=token).status == 200


def test_deleting_a_binding_revokes_at_once(raw: Raw, setup: dict[str, str]) -> None:
    create(raw, role("reader", [rule(["apps"], ["deployments"], ["get"])]))
    create(raw, binding("a", "Role", "reader", [user("alice")]))
    assert raw.get(f"{DEPLOY}/checkout", token=setup["alice"]).status == 200
    raw.delete(f"{RBAC}/namespaces/payments/rolebindings/a")
    assert raw.get(f"{DEPLOY}/checkout", token=setup["alice"]).status == 403


def test_non_resource_urls(raw: Raw, setup: dict[str, str]) -> None:
    create(
        raw,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "m"},
            "rules": [{"nonResourceURLs": ["/metrics", "/logs/*"], "verbs": ["get"]}],
        },
    )
    create(raw, binding("m", "ClusterRole", "m", [user("alice")], namespace=None))
    assert raw.get("/metrics", token=setup["alice"]).status == 404  # authorized, then simply not served
    assert raw.get("/logs/x/y", token=setup["alice"]).status == 404
    assert raw.get("/metrics", token=setup["bob"]).status == 403


def test_access_reviews(raw: Raw, setup: dict[str, str]) -> None:
    create(raw, role("restart", [rule(["apps"], ["deployments"], ["patch"], ["checkout"])]))
    create(raw, binding("r", "Role", "restart", [user("alice")]))

    def can(token: str, verb: str, name: str) -> bool:
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "namespace": "payments",
                    "verb": verb,
                    "group": "apps",
                    "resource": "deployments",
                    "name": name,
                }
            },
        }
        reply = raw.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review, token=token)
        assert reply.status == 201
        return bool(reply.body["status"]["allowed"])

    assert can(setup["alice"], "patch", "checkout")
    assert not can(setup["alice"], "patch", "ledger")
    assert not can(setup["alice"], "delete", "checkout")
    sar = raw.post(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": "alice",
                "resourceAttributes": {
                    "namespace": "payments",
                    "verb": "patch",
                    "group": "apps",
                    "resource": "deployments",
                    "name": "checkout",
                },
            },
        },
    ).body
    assert sar["status"]["allowed"] is True
    assert sar["status"]["reason"] == (
        'RBAC: allowed by RoleBinding "r/payments" of Role "restart" to User "alice"'
    )
    # bob may ask about himself but not about others
    assert (
        raw.post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            {"spec": {"user": "alice", "resourceAttributes": {"verb": "get"}}},
            token=setup["bob"],
        ).status
        == 403
    )


def test_system_masters_bypass_and_authorize_false(raw: Raw, setup: dict[str, str]) -> None:
    assert raw.get("/api/v1/namespaces/kube-system/secrets").status == 200
    with EmbeddedCluster(authorize=False) as open_cluster:
        token = open_cluster.add_user(User("nobody"))
        other = Raw(open_cluster, token)
        assert other.get("/api/v1/namespaces/kube-system/secrets").status == 200
        assert other.get("/api/v1/namespaces/kube-system/secrets", token=None).status == 401


# ---- privilege escalation prevention --------------------------------------------------------------------


@pytest.fixture
def rbac_admin(raw: Raw, setup: dict[str, str]) -> str:
    """alice may manage roles and bindings in payments and read deployments there; nothing more."""
    create(
        raw,
        role(
            "rbac-manager",
            [
                rule(
                    ["rbac.authorization.k8s.io"],
                    ["roles", "rolebindings"],
                    ["create", "update", "patch", "get"],
                ),
                rule(["apps"], ["deployments"], ["get"]),
            ],
        ),
    )
    create(raw, binding("alice-rbac", "Role", "rbac-manager", [user("alice")]))
    create(
        raw,
        role(
            "jit-restart-checkout",
            [rule(["apps"], ["deployments"], ["get", "patch"], ["checkout"])],
            namespace=None,
        ),
    )
    create(raw, role("jit-read", [rule(["apps"], ["deployments"], ["get"])], namespace=None))
    return setup["alice"]


def test_cannot_create_a_role_granting_more_than_held(raw: Raw, rbac_admin: str) -> None:
    reply = create(raw, role("more", [rule(["apps"], ["deployments"], ["get", "patch"])]), token=rbac_admin)
    assert (reply.status, reply.reason) == (403, "Forbidden")
    assert reply.message == (
        'roles.rbac.authorization.k8s.io "more" is forbidden: '
        'user "alice" (groups=["oncall" "system:authenticated"])'
        " is attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:["apps"], Resources:["deployments"], Verbs:["patch"]}'
    )
    assert (
        create(raw, role("same", [rule(["apps"], ["deployments"], ["get"])]), token=rbac_admin).status == 201
    )
    narrower = role("narrower", [rule(["apps"], ["deployments"], ["get"], ["checkout"])])
    assert create(raw, narrower, token=rbac_admin).status == 201
    wildcard = role("wild", [rule(["apps"], ["*"], ["get"])])
    assert create(raw, wildcard, token=rbac_admin).status == 403


def test_updating_a_role_is_checked_too(raw: Raw, rbac_admin: str) -> None:
    assert (
        create(raw, role("same", [rule(["apps"], ["deployments"], ["get"])]), token=rbac_admin).status == 201
    )
    reply = raw.patch(
        f"{RBAC}/namespaces/payments/roles/same",
        {"rules": [rule(["apps"], ["deployments"], ["get", "delete"])]},
        token=rbac_admin,
    )
    assert reply.status == 403 and "not currently held" in reply.message
    # only garbage-collection fields changing needs no check
    assert (
        raw.patch(
            f"{RBAC}/namespaces/payments/roles/same", {"metadata": {"finalizers": ["x/y"]}}, token=rbac_admin
        ).status
        == 200
    )


def test_escalate_verb_allows_granting_more(raw: Raw, rbac_admin: str) -> None:
    create(raw, role("escalator", [rule(["rbac.authorization.k8s.io"], ["roles"], ["escalate"])]))
    create(raw, binding("alice-escalate", "Role", "escalator", [user("alice")]))
    assert create(raw, role("more", [rule(["*"], ["*"], ["*"])]), token=rbac_admin).status == 201


def test_cannot_bind_a_role_with_more_than_held(raw: Raw, rbac_admin: str) -> None:
    reply = create(raw, binding("b", "ClusterRole", "jit-restart-checkout", [user("bob")]), token=rbac_admin)
    assert (reply.status, reply.reason) == (403, "Forbidden")
    assert reply.message.startswith('rolebindings.rbac.authorization.k8s.io "b" is forbidden: user "alice"')
    assert '{APIGroups:["apps"], Resources:["deployments"], ResourceNames:["checkout"], Verbs:["patch"]}' in (
        reply.message
    )
    # binding a role whose every permission alice holds is fine
    assert create(raw, binding("c", "ClusterRole", "jit-read", [user("bob")]), token=rbac_admin).status == 201
    missing = create(raw, binding("d", "ClusterRole", "no-such-role", [user("bob")]), token=rbac_admin)
    assert missing.status == 404  # as kube-apiserver (tests/probes: esc/bind-missing-role)
    assert 'clusterrole.rbac.authorization.k8s.io "no-such-role" not found' in missing.message


def test_bind_verb_restricted_by_resource_names(raw: Raw, rbac_admin: str) -> None:
    """The operator's allowlist: bind only the named ClusterRoles; the API server refuses any other."""
    create(
        raw,
        role(
            "allowlist",
            [rule(["rbac.authorization.k8s.io"], ["clusterroles"], ["bind"], ["jit-restart-checkout"])],
            namespace=None,
        ),
    )
    create(raw, binding("alice-allowlist", "ClusterRole", "allowlist", [user("alice")], namespace=None))
    granted = create(
        raw, binding("b", "ClusterRole", "jit-restart-checkout", [user("bob")]), token=rbac_admin
    )
    assert granted.status == 201
    assert (
        raw.patch(
            f"{DEPLOY}/checkout", {"spec": {"replicas": 3}}, token=raw.cluster.add_user(User("bob"))
        ).status
        == 200
    )
    for forbidden_role in ("cluster-admin", "admin", "edit"):
        reply = create(
            raw,
            binding(f"x-{forbidden_role}", "ClusterRole", forbidden_role, [user("bob")]),
            token=rbac_admin,
        )
        assert reply.status == 403, forbidden_role
    # bind on ClusterRoles does not cover a Role of the same name
    create(raw, role("jit-restart-checkout", [rule(["apps"], ["deployments"], ["delete"])]))
    as_role = create(raw, binding("e", "Role", "jit-restart-checkout", [user("bob")]), token=rbac_admin)
    assert as_role.status == 403


def test_bind_granted_in_one_namespace_does_not_reach_cluster_scope(raw: Raw, rbac_admin: str) -> None:
    create(
        raw, role("binder", [rule(["rbac.authorization.k8s.io"], ["clusterroles"], ["bind"])], namespace=None)
    )
    create(raw, binding("alice-binder", "ClusterRole", "binder", [user("alice")]))  # in payments only
    assert (
        create(raw, binding("b", "ClusterRole", "cluster-admin", [user("bob")]), token=rbac_admin).status
        == 201
    )
    create(
        raw,
        role(
            "crb-writer",
            [rule(["rbac.authorization.k8s.io"], ["clusterrolebindings"], ["create"])],
            namespace=None,
        ),
    )
    create(raw, binding("alice-crb", "ClusterRole", "crb-writer", [user("alice")], namespace=None))
    cluster_wide = create(
        raw, binding("root", "ClusterRole", "cluster-admin", [user("bob")], namespace=None), token=rbac_admin
    )
    assert cluster_wide.status == 403
    assert cluster_wide.message.startswith(
        'clusterrolebindings.rbac.authorization.k8s.io "root" is forbidden'
    )


def test_binding_updates_are_checked_and_role_ref_is_immutable(raw: Raw, rbac_admin: str) -> None:
    assert create(raw, binding("c", "ClusterRole", "jit-read", [user("bob")]), token=rbac_admin).status == 201
    changed = raw.patch(
        f"{RBAC}/namespaces/payments/rolebindings/c",
        {
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            }
        },
    )
    assert (changed.status, changed.reason) == (422, "Invalid")
    assert "cannot change roleRef" in changed.message
    create(raw, role("big", [rule(["*"], ["*"], ["*"])]))
    create(raw, binding("big", "Role", "big", [user("carol")]))
    sneaky = raw.patch(
        f"{RBAC}/namespaces/payments/rolebindings/big", {"subjects": [user("alice")]}, token=rbac_admin
    )
    assert sneaky.status == 403
