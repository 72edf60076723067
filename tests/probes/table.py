"""The probe table: what jitgrant relies on the API server for, asked of both servers.

Built from small generators (a RBAC matrix, webhook-configuration variants, selector strings) so the
table stays data. Everything lives in the namespaces `probe` and `probe-other` and in cluster-scoped
objects named probe-*; identities are the four static tokens of runner.USERS.
"""

from __future__ import annotations

import copy
from typing import Any

from .runner import USERS, P

NS = "probe"
API = f"/api/v1/namespaces/{NS}"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
NSRBAC = f"{RBAC}/namespaces/{NS}"
ADM = "/apis/admissionregistration.k8s.io/v1"
WIDGETS = f"/apis/probe.dev/v1/namespaces/{NS}/widgets"
TABLE = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}


def rule(
    groups: list[str], resources: list[str], verbs: list[str], names: list[str] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"apiGroups": groups, "resources": resources, "verbs": verbs}
    if names:
        out["resourceNames"] = names
    return out


def role(name: str, *rules: dict[str, Any], kind: str = "Role") -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "rules": list(rules),
    }


def binding(
    name: str, ref_kind: str, ref: str, subject: tuple[str, str], *, kind: str = "RoleBinding"
) -> dict[str, Any]:
    subject_kind, subject_name = subject
    subj: dict[str, str] = {"kind": subject_kind, "name": subject_name}
    if subject_kind == "ServiceAccount":
        subj["namespace"] = NS
    else:
        subj["apiGroup"] = "rbac.authorization.k8s.io"
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": ref_kind, "name": ref},
        "subjects": [subj],
    }


def sar(
    user: str, verb: str, resource: str, *, group: str = "", sub: str = "", name: str = "", ns: str = NS
) -> dict[str, Any]:
    attrs: dict[str, str] = {"verb": verb, "group": group, "resource": resource}
    if ns:
        attrs["namespace"] = ns
    if sub:
        attrs["subresource"] = sub
    if name:
        attrs["name"] = name
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": [*USERS.get(user, ()), "system:authenticated"],
            "resourceAttributes": attrs,
        },
    }


def sar_path(user: str, path: str, verb: str = "get") -> dict[str, Any]:
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": [*USERS.get(user, ()), "system:authenticated"],
            "nonResourceAttributes": {"path": path, "verb": verb},
        },
    }


def cm(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}, "data": {"k": "v"}}


def secret(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": labels},
        "type": "Opaque",
    }


SAR_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


def check(p_id: str, body: dict[str, Any]) -> P:
    return P(p_id, "admin", "POST", SAR_PATH, body, want=201, look=("status.allowed",))


# --- RBAC rule matching ---------------------------------------------------------------------------------

RBAC_SETUP = [
    P("_ns", "admin", "POST", "/api/v1/namespaces", {"metadata": {"name": NS}}, want=201),
    P("_ns2", "admin", "POST", "/api/v1/namespaces", {"metadata": {"name": "probe-other"}}, want=201),
    P(
        "_matrix-role",
        "admin",
        "POST",
        f"{NSRBAC}/roles",
        role(
            "matrix",
            rule([""], ["configmaps"], ["get"], ["cm-a"]),
            rule([""], ["pods/log"], ["get"]),
            rule(["apps"], ["*"], ["list"]),
            rule(["*"], ["secrets"], ["watch"]),
            rule(["apps"], ["*/scale"], ["update"]),
            rule(["coordination.k8s.io"], ["leases"], ["*"], ["l1"]),
            rule(["batch"], ["jobs", "cronjobs"], ["create", "delete"]),
        ),
        want=201,
    ),
    P(
        "_matrix-bind",
        "admin",
        "POST",
        f"{NSRBAC}/rolebindings",
        binding("matrix", "Role", "matrix", ("User", "agent")),
        want=201,
    ),
    P(
        "_group-role",
        "admin",
        "POST",
        f"{NSRBAC}/roles",
        role("grp", rule([""], ["configmaps"], ["list"])),
        want=201,
    ),
    P(
        "_group-bind",
        "admin",
        "POST",
        f"{NSRBAC}/rolebindings",
        binding("grp", "Role", "grp", ("Group", "jitgrant:approvers")),
        want=201,
    ),
    P(
        "_nonres-role",
        "admin",
        "POST",
        f"{RBAC}/clusterroles",
        role(
            "probe-nonres", {"nonResourceURLs": ["/custom/*", "/exact"], "verbs": ["get"]}, kind="ClusterRole"
        ),
        want=201,
    ),
    P(
        "_nonres-bind",
        "admin",
        "POST",
        f"{RBAC}/clusterrolebindings",
        binding("probe-nonres", "ClusterRole", "probe-nonres", ("User", "agent"), kind="ClusterRoleBinding"),
        want=201,
    ),
    P("_cm-a", "admin", "POST", f"{API}/configmaps", cm("cm-a"), want=201),
    P("_cm-b", "admin", "POST", f"{API}/configmaps", cm("cm-b"), want=201),
]

MATRIX: list[tuple[str, str, str, dict[str, str], bool]] = [
    # (id, user, verb, attributes, allowed upstream)
    ("cm-get-named", "agent", "get", {"resource": "configmaps", "name": "cm-a"}, True),
    ("cm-get-other-name", "agent", "get", {"resource": "configmaps", "name": "cm-b"}, False),
    ("cm-get-no-name", "agent", "get", {"resource": "configmaps"}, False),
    ("cm-list", "agent", "list", {"resource": "configmaps"}, False),
    ("cm-update-named", "agent", "update", {"resource": "configmaps", "name": "cm-a"}, False),
    (
        "cm-get-named-other-ns",
        "agent",
        "get",
        {"resource": "configmaps", "name": "cm-a", "ns": "probe-other"},
        False,
    ),
    ("cm-get-named-cluster", "agent", "get", {"resource": "configmaps", "name": "cm-a", "ns": ""}, False),
    ("pods-log", "agent", "get", {"resource": "pods", "sub": "log"}, True),
    ("pods-log-named", "agent", "get", {"resource": "pods", "sub": "log", "name": "p1"}, True),
    ("pods-get", "agent", "get", {"resource": "pods"}, False),
    ("pods-exec", "agent", "get", {"resource": "pods", "sub": "exec"}, False),
    ("pods-log-list", "agent", "list", {"resource": "pods", "sub": "log"}, False),
    ("apps-deploy-list", "agent", "list", {"resource": "deployments", "group": "apps"}, True),
    ("apps-sts-list", "agent", "list", {"resource": "statefulsets", "group": "apps"}, True),
    (
        "apps-star-covers-sub",
        "agent",
        "list",
        {"resource": "deployments", "group": "apps", "sub": "scale"},
        True,
    ),
    ("apps-deploy-get", "agent", "get", {"resource": "deployments", "group": "apps"}, False),
    ("extensions-deploy-list", "agent", "list", {"resource": "deployments", "group": "extensions"}, False),
    ("secrets-watch-core", "agent", "watch", {"resource": "secrets"}, True),
    ("secrets-watch-any-group", "agent", "watch", {"resource": "secrets", "group": "example.io"}, True),
    ("secrets-get", "agent", "get", {"resource": "secrets"}, False),
    ("secrets-watch-sub", "agent", "watch", {"resource": "secrets", "sub": "x"}, False),
    ("scale-deploy", "agent", "update", {"resource": "deployments", "group": "apps", "sub": "scale"}, True),
    ("scale-rs", "agent", "update", {"resource": "replicasets", "group": "apps", "sub": "scale"}, True),
    ("scale-core-rc", "agent", "update", {"resource": "replicationcontrollers", "sub": "scale"}, False),
    ("scale-deploy-main", "agent", "update", {"resource": "deployments", "group": "apps"}, False),
    (
        "lease-named-delete",
        "agent",
        "delete",
        {"resource": "leases", "group": "coordination.k8s.io", "name": "l1"},
        True,
    ),
    (
        "lease-named-patch",
        "agent",
        "patch",
        {"resource": "leases", "group": "coordination.k8s.io", "name": "l1"},
        True,
    ),
    (
        "lease-other",
        "agent",
        "delete",
        {"resource": "leases", "group": "coordination.k8s.io", "name": "l2"},
        False,
    ),
    ("lease-list", "agent", "list", {"resource": "leases", "group": "coordination.k8s.io"}, False),
    (
        "lease-create-named",
        "agent",
        "create",
        {"resource": "leases", "group": "coordination.k8s.io", "name": "l1"},
        True,
    ),
    ("jobs-create", "agent", "create", {"resource": "jobs", "group": "batch"}, True),
    ("cronjobs-delete", "agent", "delete", {"resource": "cronjobs", "group": "batch"}, True),
    ("jobs-get", "agent", "get", {"resource": "jobs", "group": "batch"}, False),
    ("verb-case", "agent", "GET", {"resource": "configmaps", "name": "cm-a"}, False),
    ("group-member-list", "approver", "list", {"resource": "configmaps"}, True),
    ("group-nonmember-list", "mallory", "list", {"resource": "configmaps"}, False),
    ("mallory-cm-named", "mallory", "get", {"resource": "configmaps", "name": "cm-a"}, False),
    ("unknown-user", "nobody", "get", {"resource": "configmaps", "name": "cm-a"}, False),
    ("admin-anything", "admin", "delete", {"resource": "nodes", "ns": ""}, True),
]

NONRES: list[tuple[str, str, str, bool]] = [
    ("nonres-prefix", "/custom/a", "get", True),
    ("nonres-deep", "/custom/a/b", "get", True),
    ("nonres-bare", "/custom", "get", False),
    ("nonres-exact", "/exact", "get", True),
    ("nonres-exact-sub", "/exact/x", "get", False),
    ("nonres-post", "/custom/a", "post", False),
    ("nonres-healthz-everyone", "/healthz", "get", True),
    ("nonres-version-everyone", "/version", "get", True),
    ("nonres-metrics", "/metrics", "get", False),
]


def rbac_matrix() -> list[P]:
    probes = list(RBAC_SETUP)
    for p_id, user, verb, attrs, _allowed in MATRIX:
        a = dict(attrs)
        ns = a.pop("ns", NS)
        probes.append(check(f"rbac/{p_id}", sar(user, verb, ns=ns, **a)))
    for p_id, path, verb, _allowed in NONRES:
        probes.append(check(f"rbac/{p_id}", sar_path("agent", path, verb)))
    # The same rules, exercised with real requests.
    probes += [
        P("rbac/req-get-named", "agent", "GET", f"{API}/configmaps/cm-a", look=("metadata.name",)),
        P(
            "rbac/req-get-other",
            "agent",
            "GET",
            f"{API}/configmaps/cm-b",
            want=403,
            frag=('cannot get resource "configmaps"', 'User "agent"'),
        ),
        P(
            "rbac/req-list",
            "agent",
            "GET",
            f"{API}/configmaps",
            want=403,
            look=("reason", "details.kind"),
            frag=('cannot list resource "configmaps"',),
        ),
        P(
            "rbac/req-group-list",
            "approver",
            "GET",
            f"{API}/configmaps?labelSelector=none%3Dnone",
            look=("kind", "items"),
        ),
        P("rbac/req-mallory", "mallory", "GET", f"{API}/configmaps/cm-a", want=403, look=("reason", "code")),
        P("rbac/req-bad-token", "not-a-token", "GET", f"{API}/configmaps", want=401, look=("reason",)),
        P("rbac/req-anonymous", "", "GET", f"{API}/configmaps", want=403, frag=('"system:anonymous"',)),
        P("rbac/req-anonymous-version", "", "GET", "/version", look=("has:gitVersion",)),
        P("rbac/req-nonres", "agent", "GET", "/custom/a", want=404),
        P(
            "rbac/req-ssar",
            "agent",
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            {
                "spec": {
                    "resourceAttributes": {
                        "namespace": NS,
                        "verb": "get",
                        "resource": "configmaps",
                        "name": "cm-a",
                    }
                }
            },
            want=201,
            look=("status.allowed",),
        ),
        P("rbac/req-sar-forbidden", "agent", "POST", SAR_PATH, sar("agent", "get", "configmaps"), want=403),
    ]
    return probes


# --- bind / escalate / roleRef ------------------------------------------------------------------------


def escalation() -> list[P]:
    rb = f"{NSRBAC}/rolebindings"
    roles = f"{NSRBAC}/roles"
    return [
        P(
            "_esc-big",
            "admin",
            "POST",
            f"{RBAC}/clusterroles",
            role("probe-big", rule([""], ["secrets"], ["get"]), kind="ClusterRole"),
            want=201,
        ),
        P(
            "_esc-small",
            "admin",
            "POST",
            f"{RBAC}/clusterroles",
            role("probe-small", rule([""], ["configmaps"], ["get"], ["cm-a"]), kind="ClusterRole"),
            want=201,
        ),
        P(
            "_esc-writer",
            "admin",
            "POST",
            roles,
            role(
                "rbac-writer",
                rule(["rbac.authorization.k8s.io"], ["rolebindings", "roles"], ["create", "update", "patch"]),
            ),
            want=201,
        ),
        P(
            "_esc-writer-bind",
            "admin",
            "POST",
            rb,
            binding("rbac-writer", "Role", "rbac-writer", ("User", "agent")),
            want=201,
        ),
        P(
            "esc/bind-unheld",
            "agent",
            "POST",
            rb,
            binding("b-big", "ClusterRole", "probe-big", ("User", "agent")),
            want=403,
            frag=("attempting to grant RBAC permissions not currently held",),
        ),
        P(
            "esc/bind-held",
            "agent",
            "POST",
            rb,
            binding("b-small", "ClusterRole", "probe-small", ("User", "mallory")),
            want=201,
        ),
        P(
            "esc/bind-missing-role",
            "agent",
            "POST",
            rb,
            binding("b-none", "ClusterRole", "probe-none", ("User", "agent")),
            want=404,
        ),
        P(
            "esc/role-unheld",
            "agent",
            "POST",
            roles,
            role("r-big", rule([""], ["secrets"], ["get"])),
            want=403,
            frag=("attempting to grant RBAC permissions not currently held",),
        ),
        P(
            "esc/role-held",
            "agent",
            "POST",
            roles,
            role("r-small", rule([""], ["configmaps"], ["get"], ["cm-a"])),
            want=201,
        ),
        P(
            "esc/role-wider-names",
            "agent",
            "POST",
            roles,
            role("r-wider", rule([""], ["configmaps"], ["get"])),
            want=403,
        ),
        P(
            "esc/crb-no-rbac",
            "agent",
            "POST",
            f"{RBAC}/clusterrolebindings",
            binding("probe-x", "ClusterRole", "probe-small", ("User", "agent"), kind="ClusterRoleBinding"),
            want=403,
        ),
        P(
            "_esc-bind-verb",
            "admin",
            "POST",
            roles,
            role("binder", rule(["rbac.authorization.k8s.io"], ["clusterroles"], ["bind"], ["probe-big"])),
            want=201,
        ),
        P(
            "_esc-bind-verb-b",
            "admin",
            "POST",
            rb,
            binding("binder", "Role", "binder", ("User", "agent")),
            want=201,
        ),
        P(
            "esc/bind-with-bind-verb",
            "agent",
            "POST",
            rb,
            binding("b-big2", "ClusterRole", "probe-big", ("User", "mallory")),
            want=201,
            pause=1.5,
        ),
        P(
            "_esc-escalate",
            "admin",
            "POST",
            roles,
            role("escalator", rule(["rbac.authorization.k8s.io"], ["roles"], ["escalate"], ["only-this"])),
            want=201,
        ),
        P(
            "_esc-escalate-b",
            "admin",
            "POST",
            rb,
            binding("escalator", "Role", "escalator", ("User", "agent")),
            want=201,
        ),
        P(
            "esc/escalate-named-other",
            "agent",
            "POST",
            roles,
            role("other-name", rule([""], ["secrets"], ["list"])),
            want=403,
            pause=1.5,
        ),
        P(
            "esc/escalate-named-match",
            "agent",
            "POST",
            roles,
            role("only-this", rule([""], ["secrets"], ["list"])),
            want=403,
        ),
        P(
            "_ref-rb",
            "admin",
            "POST",
            rb,
            binding("ref", "ClusterRole", "probe-small", ("User", "agent")),
            want=201,
            save={"ref_rv": "metadata.resourceVersion"},
        ),
        P(
            "ref/change-roleref-put",
            "admin",
            "PUT",
            f"{rb}/ref",
            {
                **binding("ref", "ClusterRole", "probe-big", ("User", "agent")),
                "metadata": {"name": "ref", "resourceVersion": "{ref_rv}"},
            },
            want=422,
            frag=("cannot change roleRef",),
        ),
        P(
            "ref/change-roleref-patch",
            "admin",
            "PATCH",
            f"{rb}/ref",
            {
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "probe-big",
                }
            },
            ctype="application/merge-patch+json",
            want=422,
            look=("reason",),
        ),
        P(
            "ref/change-subjects",
            "admin",
            "PATCH",
            f"{rb}/ref",
            {"subjects": [{"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}]},
            ctype="application/merge-patch+json",
            look=("subjects.0.name", "roleRef.name"),
        ),
        P(
            "ref/bad-kind",
            "admin",
            "POST",
            rb,
            binding("bad-kind", "Secret", "x", ("User", "agent")),
            want=422,
            look=("reason",),
        ),
        P(
            "ref/bad-subject-kind",
            "admin",
            "POST",
            rb,
            {
                **binding("bad-subj", "ClusterRole", "probe-small", ("User", "agent")),
                "subjects": [{"kind": "Robot", "name": "r"}],
            },
            want=422,
        ),
    ]


# --- ServiceAccount tokens ----------------------------------------------------------------------------

TR = f"{API}/serviceaccounts/probe-sa/token"


def tokens() -> list[P]:
    def tr(
        seconds: int | None = None, *, audiences: list[str] | None = None, bound: dict[str, str] | None = None
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if seconds is not None:
            spec["expirationSeconds"] = seconds
        if audiences is not None:
            spec["audiences"] = audiences
        if bound is not None:
            spec["boundObjectRef"] = bound
        return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}

    def tokenreview(var: str, audiences: list[str] | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {"token": "{" + var + "}"}
        if audiences is not None:
            spec["audiences"] = audiences
        return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}

    trv = "/apis/authentication.k8s.io/v1/tokenreviews"
    ssr = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
    ssr_body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    return [
        P("_sa", "admin", "POST", f"{API}/serviceaccounts", {"metadata": {"name": "probe-sa"}}, want=201),
        P(
            "_bound-secret",
            "admin",
            "POST",
            f"{API}/secrets",
            secret("bound", {}),
            want=201,
            save={"secret_uid": "metadata.uid"},
        ),
        P(
            "token/under-600",
            "admin",
            "POST",
            TR,
            tr(599),
            want=422,
            frag=("may not specify a duration less than 10 minutes",),
        ),
        P(
            "token/600",
            "admin",
            "POST",
            TR,
            tr(600),
            want=201,
            look=("kind", "has:status.token", "has:status.expirationTimestamp"),
            save={"tok600": "status.token"},
        ),
        P("token/default-ttl", "admin", "POST", TR, tr(), want=201, look=("spec.expirationSeconds",)),
        P("token/huge-ttl", "admin", "POST", TR, tr(2**32 + 1), want=422),
        P(
            "token/audience",
            "admin",
            "POST",
            TR,
            tr(3600, audiences=["probe-aud"]),
            want=201,
            look=("spec.audiences",),
            save={"tok_aud": "status.token"},
        ),
        P(
            "token/bound-secret",
            "admin",
            "POST",
            TR,
            tr(3600, bound={"kind": "Secret", "apiVersion": "v1", "name": "bound"}),
            want=201,
            look=("spec.boundObjectRef.name",),
            save={"tok_bound": "status.token"},
        ),
        P(
            "_token-bound-unused",
            "admin",
            "POST",
            TR,
            tr(3600, bound={"kind": "Secret", "apiVersion": "v1", "name": "bound"}),
            want=201,
            save={"tok_bound2": "status.token"},
        ),
        P(
            "token/bound-secret-uid-mismatch",
            "admin",
            "POST",
            TR,
            tr(
                3600,
                bound={
                    "kind": "Secret",
                    "apiVersion": "v1",
                    "name": "bound",
                    "uid": "00000000-0000-0000-0000-000000000000",
                },
            ),
            want=409,
            look=("reason",),
        ),
        P(
            "token/bound-secret-missing",
            "admin",
            "POST",
            TR,
            tr(3600, bound={"kind": "Secret", "apiVersion": "v1", "name": "nope"}),
            want=404,
            look=("reason",),
        ),
        P(
            "token/bound-configmap",
            "admin",
            "POST",
            TR,
            tr(3600, bound={"kind": "ConfigMap", "apiVersion": "v1", "name": "cm-a"}),
            want=400,
            look=("reason",),
        ),
        P(
            "token/bound-pod-missing",
            "admin",
            "POST",
            TR,
            tr(3600, bound={"kind": "Pod", "apiVersion": "v1", "name": "nope"}),
            want=404,
        ),
        P(
            "token/sa-missing",
            "admin",
            "POST",
            f"{API}/serviceaccounts/nope/token",
            tr(3600),
            want=404,
            look=("reason",),
        ),
        P(
            "token/agent-cannot-mint",
            "agent",
            "POST",
            TR,
            tr(3600),
            want=403,
            frag=('cannot create resource "serviceaccounts/token"',),
        ),
        P(
            "token/use",
            "sa",
            "POST",
            ssr,
            ssr_body,
            token="tok600",
            want=201,
            look=("status.userInfo.username", "status.userInfo.groups"),
        ),
        P(
            "token/use-forbidden",
            "sa",
            "GET",
            f"{API}/configmaps",
            token="tok600",
            want=403,
            frag=("system:serviceaccount:probe:probe-sa",),
        ),
        P(
            "token/review-default-aud",
            "admin",
            "POST",
            trv,
            tokenreview("tok600"),
            want=201,
            look=("status.authenticated", "status.user.username"),
        ),
        P(
            "token/review-custom-aud-wrong",
            "admin",
            "POST",
            trv,
            tokenreview("tok_aud"),
            want=201,
            look=("status.authenticated",),
        ),
        P(
            "token/review-custom-aud-right",
            "admin",
            "POST",
            trv,
            tokenreview("tok_aud", ["probe-aud"]),
            want=201,
            look=("status.authenticated", "status.audiences"),
        ),
        P("token/use-custom-aud", "sa", "GET", f"{API}/configmaps", token="tok_aud", want=401),
        P(
            "token/review-bound",
            "admin",
            "POST",
            trv,
            tokenreview("tok_bound"),
            want=201,
            look=("status.authenticated",),
        ),
        P("_token-unused", "admin", "POST", TR, tr(3600), want=201, save={"tok_unused": "status.token"}),
        P("_bound-delete", "admin", "DELETE", f"{API}/secrets/bound", want=200),
        P("token/bound-object-deleted", "sa", "POST", ssr, ssr_body, token="tok_bound2", want=401),
        P("_sa-delete", "admin", "DELETE", f"{API}/serviceaccounts/probe-sa", want=200),
        P("token/sa-deleted", "sa", "POST", ssr, ssr_body, token="tok_unused", want=401, look=("reason",)),
        P(
            "_sa-recreate",
            "admin",
            "POST",
            f"{API}/serviceaccounts",
            {"metadata": {"name": "probe-sa"}},
            want=201,
        ),
        P(
            "token/sa-recreated-same-name",
            "sa",
            "POST",
            ssr,
            ssr_body,
            token="tok_unused",
            want=401,
            pause=0.5,
        ),
        P("token/garbage", "garbage-token", "POST", ssr, ssr_body, want=401),
    ]


# --- a CRD: status subresource, CEL rules, defaults, printer columns -----------------------------------

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.probe.dev"},
    "spec": {
        "group": "probe.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Color", "type": "string", "jsonPath": ".spec.color", "priority": 1},
                    {"name": "Until", "type": "date", "jsonPath": ".spec.until"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "x-kubernetes-validations": [
                                    {"rule": "self.min <= self.max", "message": "min must not exceed max"},
                                    {
                                        "rule": "self.size == oldSelf.size || self.mutable",
                                        "message": "size is fixed",
                                    },
                                ],
                                "properties": {
                                    "size": {"type": "integer", "default": 3},
                                    "color": {"type": "string", "default": "blue"},
                                    "min": {"type": "integer", "default": 0},
                                    "max": {"type": "integer", "default": 10},
                                    "mutable": {"type": "boolean", "default": False},
                                    "until": {"type": "string", "format": "date-time"},
                                    "frozen": {
                                        "type": "string",
                                        "x-kubernetes-validations": [
                                            {"rule": "self == oldSelf", "message": "frozen is immutable"}
                                        ],
                                    },
                                },
                            },
                            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                        },
                    }
                },
            }
        ],
    },
}


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "probe.dev/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


def crd() -> list[P]:
    merge = "application/merge-patch+json"
    w = WIDGETS
    return [
        P(
            "_crd",
            "admin",
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            WIDGET_CRD,
            want=201,
        ),
        P(
            "crd/established",
            "admin",
            "GET",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.probe.dev",
            pause=2.0,
            look=("spec.names.kind",),
        ),
        P(
            "crd/create-defaults",
            "admin",
            "POST",
            w,
            widget("w1", frozen="a", until="2999-01-01T00:00:00Z"),
            want=201,
            look=("spec.size", "spec.color", "spec.min", "spec.max", "metadata.generation"),
        ),
        P(
            "crd/create-status-dropped",
            "admin",
            "POST",
            w,
            {**widget("w2"), "status": {"phase": "Hacked"}},
            want=201,
            look=("status",),
        ),
        P(
            "cel/min-max",
            "admin",
            "POST",
            w,
            widget("w3", min=5, max=1),
            want=422,
            frag=("min must not exceed max",),
            look=("reason",),
        ),
        P(
            "cel/transition-size",
            "admin",
            "PATCH",
            f"{w}/w1",
            {"spec": {"size": 4}},
            ctype=merge,
            want=422,
            frag=("size is fixed",),
        ),
        P(
            "cel/transition-size-mutable",
            "admin",
            "PATCH",
            f"{w}/w1",
            {"spec": {"size": 5, "mutable": True}},
            ctype=merge,
            look=("spec.size", "metadata.generation"),
        ),
        P(
            "cel/field-immutable",
            "admin",
            "PATCH",
            f"{w}/w1",
            {"spec": {"frozen": "b"}},
            ctype=merge,
            want=422,
            frag=("frozen is immutable",),
        ),
        P(
            "cel/field-same",
            "admin",
            "PATCH",
            f"{w}/w1",
            {"spec": {"frozen": "a"}},
            ctype=merge,
            look=("metadata.generation",),
        ),
        P("cel/type-error", "admin", "POST", w, widget("w4", size="big"), want=422, look=("reason",)),
        P(
            "status/main-ignores-status",
            "admin",
            "PATCH",
            f"{w}/w1",
            {"status": {"phase": "Main"}},
            ctype=merge,
            look=("status",),
        ),
        P(
            "status/write",
            "admin",
            "PATCH",
            f"{w}/w1/status",
            {"status": {"phase": "Ready"}},
            ctype=merge,
            look=("status.phase", "metadata.generation"),
        ),
        P(
            "status/ignores-spec",
            "admin",
            "PATCH",
            f"{w}/w1/status",
            {"spec": {"color": "red"}, "status": {"phase": "Done"}},
            ctype=merge,
            look=("spec.color", "status.phase"),
        ),
        P("status/read", "admin", "GET", f"{w}/w1/status", look=("kind", "status.phase", "spec.color")),
        P(
            "status/agent-forbidden",
            "agent",
            "PATCH",
            f"{w}/w1/status",
            {"status": {"phase": "X"}},
            ctype=merge,
            want=403,
            frag=('cannot patch resource "widgets/status"',),
        ),
        P(
            "status/missing-object",
            "admin",
            "PATCH",
            f"{w}/nope/status",
            {"status": {"phase": "X"}},
            ctype=merge,
            want=404,
        ),
        P("status/generation-after", "admin", "GET", f"{w}/w1", look=("metadata.generation", "status.phase")),
        P("table/columns", "admin", "GET", w, headers=TABLE, look=("kind", "columns")),
        P(
            "table/cells",
            "admin",
            "GET",
            f"{w}?fieldSelector=metadata.name%3Dw1",
            headers=TABLE,
            look=("cells:0",),
        ),
        P(
            "table/priority",
            "admin",
            "GET",
            w,
            headers=TABLE,
            look=("columnDefinitions.2.name", "columnDefinitions.2.priority"),
        ),
        P(
            "table/single",
            "admin",
            "GET",
            f"{w}/w2",
            headers=TABLE,
            look=("kind", "len:rows", "rows.0.cells.0"),
        ),
        P(
            "table/builtin-cm",
            "admin",
            "GET",
            f"{API}/configmaps/cm-a",
            headers=TABLE,
            look=("columns", "rows.0.cells.0", "rows.0.cells.1"),
        ),
        P(
            "table/no-object-by-default",
            "admin",
            "GET",
            f"{API}/configmaps/cm-a",
            headers=TABLE,
            look=("rows.0.object.kind", "rows.0.object.metadata.name"),
        ),
    ]


# --- resourceVersion, finalizers, dryRun -------------------------------------------------------------


def writes() -> list[P]:
    merge = "application/merge-patch+json"
    c = f"{API}/configmaps"
    return [
        P("_rv-cm", "admin", "POST", c, cm("rv"), want=201, save={"rv1": "metadata.resourceVersion"}),
        P("_rv-bump", "admin", "PATCH", f"{c}/rv", {"data": {"k": "2"}}, ctype=merge, want=200),
        P(
            "rv/stale-put",
            "admin",
            "PUT",
            f"{c}/rv",
            {**cm("rv"), "metadata": {"name": "rv", "resourceVersion": "{rv1}"}},
            want=409,
            look=("reason",),
            frag=("the object has been modified",),
        ),
        P(
            "rv/stale-patch",
            "admin",
            "PATCH",
            f"{c}/rv",
            {"metadata": {"resourceVersion": "{rv1}"}, "data": {"k": "3"}},
            ctype=merge,
            want=409,
            look=("reason",),
        ),
        P("rv/unconditional-put", "admin", "PUT", f"{c}/rv", cm("rv"), look=("data.k",)),
        P(
            "rv/create-with-rv",
            "admin",
            "POST",
            c,
            {**cm("rv-new"), "metadata": {"name": "rv-new", "resourceVersion": "5"}},
            want=500,
            frag=("resourceVersion should not be set on objects to be created",),
        ),
        P("rv/put-missing", "admin", "PUT", f"{c}/rv-absent", cm("rv-absent"), want=404),
        P("rv/name-mismatch", "admin", "PUT", f"{c}/rv", cm("other"), want=400, look=("reason",)),
        P("rv/create-exists", "admin", "POST", c, cm("rv"), want=409, look=("reason", "details.name")),
        P("rv/invalid-name", "admin", "POST", c, cm("Bad_Name"), want=422, look=("reason",)),
        P(
            "rv/generate-name",
            "admin",
            "POST",
            c,
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}},
            want=201,
            look=("metadata.generateName",),
        ),
        P("_fin", "admin", "POST", c, cm("held", finalizers=["probe.dev/hold"]), want=201),
        P(
            "fin/delete-held",
            "admin",
            "DELETE",
            f"{c}/held",
            look=("has:metadata.deletionTimestamp", "metadata.finalizers"),
        ),
        P(
            "fin/still-there",
            "admin",
            "GET",
            f"{c}/held",
            look=("has:metadata.deletionTimestamp", "has:metadata.deletionGracePeriodSeconds"),
        ),
        P(
            "fin/add-while-deleting",
            "admin",
            "PATCH",
            f"{c}/held",
            {"metadata": {"finalizers": ["probe.dev/hold", "probe.dev/more"]}},
            ctype=merge,
            want=422,
            frag=("no new finalizers can be added if the object is being deleted",),
        ),
        P(
            "fin/update-data-while-deleting",
            "admin",
            "PATCH",
            f"{c}/held",
            {"data": {"k": "late"}},
            ctype=merge,
            look=("data.k",),
        ),
        P("fin/delete-again", "admin", "DELETE", f"{c}/held", look=("has:metadata.deletionTimestamp",)),
        P("fin/remove", "admin", "PATCH", f"{c}/held", {"metadata": {"finalizers": None}}, ctype=merge),
        P("fin/gone", "admin", "GET", f"{c}/held", want=404, look=("reason", "details.name")),
        P("_plain", "admin", "POST", c, cm("plain"), want=201),
        P("fin/delete-plain", "admin", "DELETE", f"{c}/plain", look=("kind",)),
        P("fin/delete-missing", "admin", "DELETE", f"{c}/plain", want=404),
        P(
            "fin/delete-precondition",
            "admin",
            "DELETE",
            f"{c}/rv",
            {"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}},
            want=409,
        ),
        P("fin/orphan-crd", "admin", "DELETE", f"{WIDGETS}/w2", look=("kind",)),
        P(
            "dry/create",
            "admin",
            "POST",
            f"{c}?dryRun=All",
            cm("dry"),
            want=201,
            look=("metadata.name", "has:metadata.uid"),
        ),
        P("dry/create-not-stored", "admin", "GET", f"{c}/dry", want=404),
        P("dry/bad-value", "admin", "POST", f"{c}?dryRun=Yes", cm("dry"), want=422),
        P("dry/delete", "admin", "DELETE", f"{c}/cm-b?dryRun=All"),
        P("dry/delete-kept", "admin", "GET", f"{c}/cm-b", look=("metadata.name",)),
        P(
            "dry/patch",
            "admin",
            "PATCH",
            f"{c}/cm-b?dryRun=All",
            {"data": {"k": "dry"}},
            ctype=merge,
            look=("data.k",),
        ),
        P("dry/patch-kept", "admin", "GET", f"{c}/cm-b", look=("data.k",)),
        P("dry/still-authorized", "agent", "POST", f"{c}?dryRun=All", cm("dry2"), want=403),
        P("dry/validates", "admin", "POST", f"{c}?dryRun=All", cm("Bad_Name"), want=422),
        P(
            "dry/crd-cel",
            "admin",
            "POST",
            f"{WIDGETS}?dryRun=All",
            widget("w9", min=3, max=2),
            want=422,
            frag=("min must not exceed max",),
        ),
    ]


# --- webhook configurations ---------------------------------------------------------------------------

GOOD_HOOK: dict[str, Any] = {
    "name": "probe.probe.dev",
    "clientConfig": {"url": "https://127.0.0.1:1/probe"},
    "rules": [
        {
            "apiGroups": ["probe.dev"],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["gadgets"],
            "scope": "Namespaced",
        }
    ],
    "sideEffects": "None",
    "admissionReviewVersions": ["v1"],
    "failurePolicy": "Ignore",
}


def hook_variant(change: dict[str, Any], drop: str | None = None) -> dict[str, Any]:
    hook = copy.deepcopy(GOOD_HOOK)
    for key, value in change.items():
        if key == "clientConfig" or key == "rules":
            hook[key] = value
        else:
            hook[key] = value
    if drop:
        hook.pop(drop)
    return hook


def webhook_configs() -> list[P]:
    rules = GOOD_HOOK["rules"][0]
    variants: list[tuple[str, dict[str, Any], str | None, int]] = [
        ("valid", {}, None, 201),
        ("no-side-effects", {}, "sideEffects", 422),
        ("side-effects-unknown", {"sideEffects": "Unknown"}, None, 422),
        ("side-effects-bad", {"sideEffects": "Sometimes"}, None, 422),
        ("no-review-versions", {}, "admissionReviewVersions", 422),
        ("review-versions-unknown", {"admissionReviewVersions": ["v7"]}, None, 422),
        ("http-url", {"clientConfig": {"url": "http://127.0.0.1:1/probe"}}, None, 422),
        ("url-query", {"clientConfig": {"url": "https://127.0.0.1:1/probe?x=1"}}, None, 422),
        ("url-fragment", {"clientConfig": {"url": "https://127.0.0.1:1/probe#x"}}, None, 422),
        ("url-userinfo", {"clientConfig": {"url": "https://u:p@127.0.0.1:1/probe"}}, None, 422),
        (
            "url-and-service",
            {"clientConfig": {"url": "https://127.0.0.1:1/p", "service": {"name": "s", "namespace": NS}}},
            None,
            422,
        ),
        ("no-client", {"clientConfig": {}}, None, 422),
        (
            "service-bad-path",
            {"clientConfig": {"service": {"name": "s", "namespace": NS, "path": "no-slash"}}},
            None,
            422,
        ),
        (
            "service-bad-port",
            {"clientConfig": {"service": {"name": "s", "namespace": NS, "port": 70000}}},
            None,
            422,
        ),
        ("name-unqualified", {"name": "probe"}, None, 422),
        ("timeout-high", {"timeoutSeconds": 31}, None, 422),
        ("timeout-zero", {"timeoutSeconds": 0}, None, 422),
        ("failure-policy-bad", {"failurePolicy": "Maybe"}, None, 422),
        ("match-policy-bad", {"matchPolicy": "Fuzzy"}, None, 422),
        ("operation-bad", {"rules": [{**rules, "operations": ["FETCH"]}]}, None, 422),
        ("scope-bad", {"rules": [{**rules, "scope": "Everywhere"}]}, None, 422),
        ("resource-star-sub", {"rules": [{**rules, "resources": ["*/status"]}]}, None, 201),
        ("resource-empty", {"rules": [{**rules, "resources": []}]}, None, 422),
        ("api-groups-empty", {"rules": [{**rules, "apiGroups": []}]}, None, 422),
        (
            "selector-bad",
            {"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}},
            None,
            422,
        ),
    ]
    probes: list[P] = []
    for p_id, change, drop, want in variants:
        body = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": f"probe-{p_id}"},
            "webhooks": [hook_variant(change, drop)],
        }
        probes.append(
            P(
                f"whc/validating-{p_id}",
                "admin",
                "POST",
                f"{ADM}/validatingwebhookconfigurations",
                body,
                want=want,
                look=("reason",),
            )
        )
    dup = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "probe-dup"},
        "webhooks": [GOOD_HOOK, GOOD_HOOK],
    }
    probes.append(
        P(
            "whc/validating-duplicate-names",
            "admin",
            "POST",
            f"{ADM}/validatingwebhookconfigurations",
            dup,
            want=422,
        )
    )
    mutating: list[tuple[str, dict[str, Any], int]] = [
        ("valid", {}, 201),
        ("reinvocation-bad", {"reinvocationPolicy": "Sometimes"}, 422),
        ("reinvocation-if-needed", {"reinvocationPolicy": "IfNeeded"}, 201),
        ("no-side-effects", {"sideEffects": None}, 422),
    ]
    for p_id, change, want in mutating:
        hook = {**copy.deepcopy(GOOD_HOOK), **change}
        hook = {k: v for k, v in hook.items() if v is not None}
        body = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": f"probe-m-{p_id}"},
            "webhooks": [hook],
        }
        probes.append(
            P(
                f"whc/mutating-{p_id}",
                "admin",
                "POST",
                f"{ADM}/mutatingwebhookconfigurations",
                body,
                want=want,
                look=("reason",),
            )
        )
    probes.append(
        P(
            "whc/defaults",
            "admin",
            "GET",
            f"{ADM}/mutatingwebhookconfigurations/probe-m-valid",
            look=(
                "webhooks.0.matchPolicy",
                "webhooks.0.timeoutSeconds",
                "webhooks.0.reinvocationPolicy",
                "webhooks.0.namespaceSelector",
                "webhooks.0.objectSelector",
            ),
        )
    )
    probes.append(
        P(
            "whc/agent-cannot-create",
            "agent",
            "POST",
            f"{ADM}/validatingwebhookconfigurations",
            {"metadata": {"name": "x"}, "webhooks": []},
            want=403,
        )
    )
    return probes


# --- impersonation ------------------------------------------------------------------------------------


def impersonation() -> list[P]:
    ssr = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    who = ("status.userInfo.username", "status.userInfo.groups")
    return [
        P(
            "imp/no-right",
            "agent",
            "POST",
            ssr,
            body,
            headers={"Impersonate-User": "admin"},
            want=403,
            frag=('cannot impersonate resource "users"',),
        ),
        P(
            "_imp-role",
            "admin",
            "POST",
            f"{RBAC}/clusterroles",
            role(
                "probe-imp",
                rule([""], ["users"], ["impersonate"], ["mallory"]),
                rule([""], ["groups"], ["impersonate"], ["probe-group"]),
                kind="ClusterRole",
            ),
            want=201,
        ),
        P(
            "_imp-bind",
            "admin",
            "POST",
            f"{RBAC}/clusterrolebindings",
            binding("probe-imp", "ClusterRole", "probe-imp", ("User", "agent"), kind="ClusterRoleBinding"),
            want=201,
        ),
        P(
            "imp/allowed-user",
            "agent",
            "POST",
            ssr,
            body,
            headers={"Impersonate-User": "mallory"},
            want=201,
            look=who,
            pause=1.5,
        ),
        P(
            "imp/as-mallory-acts",
            "agent",
            "GET",
            f"{API}/configmaps/cm-a",
            headers={"Impersonate-User": "mallory"},
            look=("metadata.name",),
        ),
        P("imp/other-user", "agent", "POST", ssr, body, headers={"Impersonate-User": "approver"}, want=403),
        P(
            "imp/allowed-group",
            "agent",
            "POST",
            ssr,
            body,
            headers={"Impersonate-User": "mallory", "Impersonate-Group": "probe-group"},
            want=201,
            look=who,
        ),
        P(
            "imp/other-group",
            "agent",
            "POST",
            ssr,
            body,
            headers={"Impersonate-User": "mallory", "Impersonate-Group": "system:masters"},
            want=403,
        ),
        P(
            "imp/group-without-user",
            "admin",
            "POST",
            ssr,
            body,
            headers={"Impersonate-Group": "probe-group"},
            want=400,
        ),
        P(
            "imp/admin-as-sa",
            "admin",
            "POST",
            ssr,
            body,
            headers={"Impersonate-User": "system:serviceaccount:probe:probe-sa"},
            want=201,
            look=who,
        ),
        P(
            "imp/admin-as-user-groups",
            "admin",
            "POST",
            ssr,
            body,
            headers={"Impersonate-User": "someone", "Impersonate-Group": "g1"},
            want=201,
            look=who,
        ),
        P(
            "imp/extra",
            "admin",
            "POST",
            ssr,
            body,
            headers={"Impersonate-User": "someone", "Impersonate-Extra-Scopes": "view"},
            want=201,
            look=("status.userInfo.extra",),
        ),
        P(
            "imp/uid",
            "admin",
            "POST",
            ssr,
            body,
            headers={"Impersonate-User": "someone", "Impersonate-Uid": "u-1"},
            want=201,
            look=("status.userInfo.uid",),
        ),
        P("imp/uid-without-user", "admin", "POST", ssr, body, headers={"Impersonate-Uid": "u-1"}, want=400),
        P(
            "imp/mallory-cannot",
            "mallory",
            "GET",
            f"{API}/configmaps",
            headers={"Impersonate-User": "admin"},
            want=403,
        ),
    ]


# --- selectors and watch -------------------------------------------------------------------------------


def selectors() -> list[P]:
    s = f"{API}/secrets"
    setup = [
        P(
            "_sel-a",
            "admin",
            "POST",
            s,
            secret("sel-a", {"app": "a", "tier": "web", "probe-sel": "1"}),
            want=201,
        ),
        P(
            "_sel-b",
            "admin",
            "POST",
            s,
            secret("sel-b", {"app": "b", "tier": "db", "probe-sel": "1"}),
            want=201,
        ),
        P("_sel-c", "admin", "POST", s, secret("sel-c", {"tier": "web", "probe-sel": "1"}), want=201),
    ]
    cases = [
        ("eq", "labelSelector=probe-sel%3D1,app%3Da", 200),
        ("neq", "labelSelector=probe-sel%3D1,app!%3Da", 200),
        ("in", "labelSelector=probe-sel%3D1,app+in+(a,b)", 200),
        ("notin", "labelSelector=probe-sel%3D1,app+notin+(a)", 200),
        ("exists", "labelSelector=probe-sel%3D1,app", 200),
        ("not-exists", "labelSelector=probe-sel%3D1,!app", 200),
        ("double-eq", "labelSelector=probe-sel%3D1,tier%3D%3Dweb", 200),
        ("bad-syntax", "labelSelector=app%3D%3D%3D", 400),
        ("bad-value", "labelSelector=app%3D-bad-", 400),
        ("field-name", "fieldSelector=metadata.name%3Dsel-b", 200),
        ("field-name-neq", "labelSelector=probe-sel%3D1&fieldSelector=metadata.name!%3Dsel-b", 200),
        ("field-type", "labelSelector=probe-sel%3D1&fieldSelector=type%3DOpaque", 200),
        ("field-unsupported", "fieldSelector=data.x%3D1", 400),
        ("field-and-label", "labelSelector=tier%3Dweb&fieldSelector=metadata.name%3Dsel-c", 200),
        ("limit", "labelSelector=probe-sel%3D1&limit=2", 200),
    ]
    probes = list(setup)
    for p_id, query, want in cases:
        probes.append(
            P(
                f"sel/{p_id}",
                "admin",
                "GET",
                f"{s}?{query}",
                want=want,
                look=("names",) if want == 200 else ("reason",),
            )
        )
    probes += [
        P(
            "sel/limit-continue",
            "admin",
            "GET",
            f"{s}?labelSelector=probe-sel%3D1&limit=2",
            look=("has:metadata.continue", "len:items"),
        ),
        P(
            "sel/ns-field-cluster-list",
            "admin",
            "GET",
            "/api/v1/secrets?labelSelector=probe-sel%3D1&fieldSelector=metadata.namespace%3Dprobe-other",
            look=("names",),
        ),
        P("sel/crd-field-unsupported", "admin", "GET", f"{WIDGETS}?fieldSelector=spec.size%3D3", want=400),
        P(
            "sel/ns-label",
            "admin",
            "GET",
            "/api/v1/namespaces?labelSelector=kubernetes.io/metadata.name%3Dprobe",
            look=("names",),
        ),
    ]
    return probes


def watches() -> list[P]:
    s = f"{API}/secrets"
    sel = "labelSelector=probe-watch%3D1"
    return [
        P("_w-list", "admin", "GET", f"{s}?{sel}", save={"wrv": "metadata.resourceVersion"}),
        P("_w-create", "admin", "POST", s, secret("watched", {"probe-watch": "1"}), want=201),
        P(
            "_w-update",
            "admin",
            "PATCH",
            f"{s}/watched",
            {"metadata": {"annotations": {"x": "y"}}},
            ctype="application/merge-patch+json",
        ),
        P("_w-delete", "admin", "DELETE", f"{s}/watched"),
        P(
            "watch/from-rv",
            "admin",
            "GET",
            f"{s}?watch=true&{sel}&resourceVersion={{wrv}}&timeoutSeconds=1",
            look=("events",),
        ),
        P(
            "watch/rv-zero",
            "admin",
            "GET",
            f"{s}?watch=true&{sel}&resourceVersion=0&timeoutSeconds=1",
            look=("events",),
        ),
        P(
            "watch/too-old",
            "admin",
            "GET",
            f"{s}?watch=true&resourceVersion=1&timeoutSeconds=1",
            look=("events",),
        ),
        P(
            "watch/bad-rv",
            "admin",
            "GET",
            f"{s}?watch=true&resourceVersion=abc&timeoutSeconds=1",
            want=500,
            look=("reason",),
        ),
        P("watch/forbidden", "mallory", "GET", f"{s}?watch=true&timeoutSeconds=1", want=403),
        P(
            "watch/named",
            "admin",
            "GET",
            f"{API}/configmaps?watch=true&fieldSelector=metadata.name%3Dcm-a&resourceVersion=0&timeoutSeconds=1",
            look=("events",),
        ),
        P(
            "watch/list-rv-exact-1",
            "admin",
            "GET",
            f"{s}?{sel}&resourceVersion=1&resourceVersionMatch=Exact",
            look=("names",),
        ),
        P("watch/list-rv-match-without-rv", "admin", "GET", f"{s}?resourceVersionMatch=Exact", want=422),
    ]


# --- default and aggregated ClusterRoles --------------------------------------------------------------


def default_roles() -> list[P]:
    cr = f"{RBAC}/clusterroles"
    probes: list[P] = []
    for name in (
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
    ):
        probes.append(
            P(
                f"roles/exists-{name}",
                "admin",
                "GET",
                f"{cr}/{name}",
                look=("metadata.name", "has:aggregationRule"),
            )
        )
    for name, verb, group, resource in [
        ("edit", "impersonate", "", "serviceaccounts"),
        ("admin", "impersonate", "", "serviceaccounts"),
        ("edit", "create", "", "serviceaccounts/token"),
        ("view", "get", "", "secrets"),
        ("view", "list", "", "configmaps"),
        ("edit", "create", "rbac.authorization.k8s.io", "rolebindings"),
        ("admin", "create", "rbac.authorization.k8s.io", "rolebindings"),
        ("cluster-admin", "delete", "", "nodes"),
        ("admin", "create", "authorization.k8s.io", "localsubjectaccessreviews"),
    ]:
        probes.append(
            P(
                f"roles/{name}-{verb}-{resource.replace('/', '-')}",
                "admin",
                "GET",
                f"{cr}/{name}",
                look=(f"rules:{verb}:{group}:{resource}",),
            )
        )
    probes += [
        P(
            "_agg",
            "admin",
            "POST",
            cr,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "probe-agg"},
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"probe.dev/agg": "true"}}]},
            },
            want=201,
        ),
        P(
            "_agg-part",
            "admin",
            "POST",
            cr,
            {
                **role("probe-agg-part", rule(["probe.dev"], ["widgets"], ["get"]), kind="ClusterRole"),
                "metadata": {
                    "name": "probe-agg-part",
                    "labels": {
                        "probe.dev/agg": "true",
                        "rbac.authorization.k8s.io/aggregate-to-view": "true",
                    },
                },
            },
            want=201,
        ),
        P(
            "roles/aggregated",
            "admin",
            "GET",
            f"{cr}/probe-agg",
            look=("rules:get:probe.dev:widgets",),
            pause=3.0,
        ),
        P("roles/aggregated-into-view", "admin", "GET", f"{cr}/view", look=("rules:get:probe.dev:widgets",)),
        P(
            "_view-bind",
            "admin",
            "POST",
            f"{NSRBAC}/rolebindings",
            binding("view-mallory", "ClusterRole", "view", ("User", "mallory")),
            want=201,
        ),
        P(
            "roles/view-bound-widgets",
            "admin",
            "POST",
            SAR_PATH,
            sar("mallory", "get", "widgets", group="probe.dev"),
            want=201,
            look=("status.allowed",),
            pause=1.5,
        ),
        P(
            "roles/view-bound-secrets",
            "admin",
            "POST",
            SAR_PATH,
            sar("mallory", "get", "secrets"),
            want=201,
            look=("status.allowed",),
        ),
        P(
            "roles/authenticated-ssar",
            "admin",
            "POST",
            SAR_PATH,
            sar("nobody-at-all", "create", "selfsubjectaccessreviews", group="authorization.k8s.io", ns=""),
            want=201,
            look=("status.allowed",),
        ),
        P("roles/namespace-label", "admin", "GET", f"/api/v1/namespaces/{NS}", look=("metadata.labels",)),
    ]
    return probes


# --- webhook replies ---------------------------------------------------------------------------------
# Each case is one webhook (in one mutating or one validating configuration) that only sees ConfigMaps
# labelled probe-reply=<case>, pointed at tests/probes/replies.py, which answers with a canned reply.
# The probe creates such a ConfigMap and records status, reason, code, the key part of the message
# and the Warning header.

INVALID = "received invalid webhook response: "
CALL = "failed to call webhook: "
UNDECODABLE = "received undecodable patch in webhook response"
DENIED = "denied the request"
REVIEW_V1 = "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview"

# (probe id, status upstream answers, reply in replies.REPLIES, mutating "m" / validating "v",
# fragments of the message)
REPLY_CASES: list[tuple[str, int, str, str, tuple[str, ...]]] = [
    ("allow", 201, "allow", "m", ()),
    ("patch-ok", 201, "patch-ok", "m", ()),
    ("patch-empty-list", 201, "patch-empty-list", "m", ()),
    ("patch-no-type", 500, "patch-no-type", "m", (INVALID + "webhook returned response.patch but not",)),
    ("type-no-patch", 500, "type-no-patch", "m", (INVALID + "webhook returned response.patchType but",)),
    (
        "type-empty",
        500,
        "type-empty",
        "m",
        (INVALID + 'webhook returned invalid response.patchType of \\"\\"',),
    ),
    (
        "type-merge",
        500,
        "type-merge",
        "m",
        ('failed calling webhook \\"type-merge.reply.probe.dev\\": unsupported',),
    ),
    ("type-merge-object", 500, "type-merge-object", "m", (UNDECODABLE,)),
    ("patch-not-json", 500, "patch-not-json", "m", (UNDECODABLE,)),
    ("patch-object", 500, "patch-object", "m", (UNDECODABLE + ": json: cannot unmarshal object",)),
    ("patch-bad-op", 500, "patch-bad-op", "m", ("Internal error occurred", "failed calling webhook")),
    ("patch-unknown-op", 500, "patch-unknown-op", "m", ("Internal error occurred: Unexpected kind: frob",)),
    ("patch-not-base64", 500, "patch-not-base64", "m", (CALL + "illegal base64 data at input byte 0",)),
    ("v1beta1", 500, "v1beta1", "m", (CALL + "converting (v1beta1.AdmissionReview) to",)),
    ("wrong-group", 500, "wrong-group", "m", (CALL + 'no kind \\"AdmissionReview\\" is registered',)),
    ("wrong-kind", 500, "wrong-kind", "m", (CALL + 'no kind \\"AdmissionResponse\\" is registered',)),
    ("no-type-meta", 500, "no-type-meta", "m", (INVALID + REVIEW_V1 + ", got /, Kind=",)),
    ("no-response", 500, "no-response", "m", (INVALID + "webhook response was absent",)),
    (
        "uid-wrong",
        500,
        "uid-wrong",
        "m",
        (INVALID + "expected response.uid=", 'got \\"not-the-request-uid\\"'),
    ),
    ("uid-missing", 500, "uid-missing", "m", (INVALID + "expected response.uid=", 'got \\"\\"')),
    ("not-json", 500, "not-json", "m", (CALL + "couldn't get version/kind; json parse error",)),
    ("http-500", 500, "http-500", "m", (CALL,)),
    (
        "deny-code",
        422,
        "deny-code",
        "m",
        ('admission webhook \\"deny-code.reply.probe.dev\\" denied the request: too',),
    ),
    ("deny-message", 400, "deny-message", "m", (DENIED + ": not today",)),
    ("deny-low-code", 400, "deny-low-code", "m", (DENIED + ": low",)),
    ("deny-reason-only", 400, "deny-reason-only", "m", (DENIED + ": NotToday",)),
    ("deny-bare", 400, "deny-bare", "m", (DENIED + " without explanation",)),
    ("deny-allowed-missing", 400, "deny-allowed-missing", "m", (DENIED + " without explanation",)),
    ("deny-details", 409, "deny-details", "m", ('"causes"', "taken")),
    ("warn", 201, "warn", "m", ()),
    ("deny-warn", 400, "deny-warn", "m", (DENIED + ": no",)),
    ("ignored-bad-reply", 201, "ignored-bad-reply", "m", ()),
    ("v-allow", 201, "allow", "v", ()),
    (
        "v-patch",
        500,
        "validating-patch",
        "v",
        (INVALID + "validating webhook may not return response.patch",),
    ),
    ("v-patch-only", 500, "validating-patch-only", "v", (INVALID + "validating webhook may not return",)),
    (
        "v-type-only",
        500,
        "validating-type-only",
        "v",
        ("validating webhook may not return response.patchType",),
    ),
    ("v-v1beta1", 500, "v1beta1", "v", (CALL + "converting (v1beta1.AdmissionReview) to",)),
    ("v-uid-wrong", 500, "uid-wrong", "v", (INVALID + "expected response.uid=",)),
    ("v-no-response", 500, "no-response", "v", (INVALID + "webhook response was absent",)),
    ("v-not-json", 500, "not-json", "v", (CALL + "couldn't get version/kind; json parse error",)),
    ("v-deny-code", 422, "deny-code", "v", (DENIED + ": too big",)),
    ("v-deny-bare", 400, "deny-bare", "v", (DENIED + " without explanation",)),
    ("v-deny-details", 409, "deny-details", "v", ('"causes"', "taken")),
    ("v-warn", 201, "warn", "v", ()),
    ("v-deny-warn", 400, "deny-warn", "v", (DENIED + ": no",)),
]


def reply_hook(p_id: str, url: str, ca_bundle: str, mutating: bool) -> dict[str, Any]:
    hook: dict[str, Any] = {
        "name": f"{p_id}.reply.probe.dev",
        "clientConfig": {"url": url, "caBundle": ca_bundle},
        "rules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["configmaps"],
                "scope": "Namespaced",
            }
        ],
        "objectSelector": {"matchLabels": {"probe-reply": p_id}},
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "failurePolicy": "Ignore" if p_id.startswith("ignored") else "Fail",
        "timeoutSeconds": 5,
    }
    if mutating:
        hook["reinvocationPolicy"] = "Never"
    return hook


def webhook_replies(reply_url: str, ca_bundle: str) -> list[P]:
    """reply_url + "/<case>" is where replies.ReplyServer answers with REPLIES[case]."""
    configs: list[P] = []
    for kind, plural, short in (
        ("MutatingWebhookConfiguration", "mutatingwebhookconfigurations", "m"),
        ("ValidatingWebhookConfiguration", "validatingwebhookconfigurations", "v"),
    ):
        hooks = [
            reply_hook(p_id, f"{reply_url}/{case}", ca_bundle, short == "m")
            for p_id, _, case, which, _ in REPLY_CASES
            if which == short
        ]
        body = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": f"probe-replies-{short}"},
            "webhooks": hooks,
        }
        configs.append(P(f"_replies-{short}", "admin", "POST", f"{ADM}/{plural}", body, want=201))
    probes = [*configs]
    for p_id, want, _, _, frags in REPLY_CASES:
        body = cm(f"reply-{p_id}", labels={"probe-reply": p_id})
        probes.append(
            P(
                f"reply/{p_id}",
                "admin",
                "POST",
                f"{API}/configmaps",
                body,
                want=want,
                look=("reason", "code", "metadata.labels.patched", "details.name"),
                frag=frags,
                hdr=("Warning",),
            )
        )
    probes += [
        P(f"_replies-{short}-delete", "admin", "DELETE", f"{ADM}/{plural}/probe-replies-{short}")
        for short, plural in (
            ("m", "mutatingwebhookconfigurations"),
            ("v", "validatingwebhookconfigurations"),
        )
    ]
    return probes


def all_probes(reply_url: str = "https://127.0.0.1:1/reply", ca_bundle: str = "") -> list[P]:
    """reply_url and ca_bundle locate replies.ReplyServer; the defaults only serve counting."""
    return [
        *rbac_matrix(),
        *escalation(),
        *tokens(),
        *crd(),
        *writes(),
        *webhook_configs(),
        *impersonation(),
        *selectors(),
        *watches(),
        *default_roles(),
        *webhook_replies(reply_url, ca_bundle),
    ]
