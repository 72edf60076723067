"""The console's own ServiceAccount, as the chart renders it with console.enabled, on a real
kube-apiserver: its effective rights (SelfSubjectRulesReview with its own token) are only what every
authenticated identity has, so it can neither read nor decide a request on anyone's behalf; the chart
binds it to nothing; and the calls a thief holding its token would try are refused with the API
server's reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import create_from_dict

from jitgrant_testing.environment import OPERATOR_NAMESPACE
from jitgrant_testing.realenv import RealEnvironment, render_chart

from .test_operator_rights import DISCOVERY_URLS, NAMESPACES, describe, effective_rights

CONSOLE_VALUES = {
    "webhook": {"certManager": {"enabled": False}},
    "console": {
        "enabled": True,
        "publicURL": "https://jitgrant.example.com",
        "oidc": {"issuerURL": "https://idp.example.com", "clientID": "jitgrant-console"},
    },
}
# What the bootstrap policy gives every authenticated identity (system:basic-user): ask who you are
# and what you may do. Nothing else.
EVERYONE = {
    ("authentication.k8s.io", "selfsubjectreviews", "create", ""),
    ("authorization.k8s.io", "selfsubjectaccessreviews", "create", ""),
    ("authorization.k8s.io", "selfsubjectrulesreviews", "create", ""),
}


def console_objects() -> list[dict[str, Any]]:
    return [m for m in render_chart(CONSOLE_VALUES) if m["metadata"]["name"].endswith("-console")]


@pytest.fixture(scope="module")
def console_account(real_env: RealEnvironment) -> Iterator[ApiClient]:
    """The chart's console ServiceAccount created on the real API server, and a client with its token."""
    [account] = [m for m in console_objects() if m["kind"] == "ServiceAccount"]
    create_from_dict(real_env.admin, account, namespace=OPERATOR_NAMESPACE)
    try:
        yield real_env.client_for_service_account(OPERATOR_NAMESPACE, account["metadata"]["name"])
    finally:
        CoreV1Api(real_env.admin).delete_namespaced_service_account(
            account["metadata"]["name"], OPERATOR_NAMESPACE
        )


def test_the_chart_binds_the_console_to_nothing() -> None:
    rendered = render_chart(CONSOLE_VALUES)
    kinds = sorted(m["kind"] for m in console_objects())
    assert kinds == ["Deployment", "Service", "ServiceAccount"], kinds
    bound = [
        m["metadata"]["name"]
        for m in rendered
        if m["kind"] in ("RoleBinding", "ClusterRoleBinding")
        and any(s.get("name", "").endswith("-console") for s in m.get("subjects") or [])
    ]
    assert bound == []
    assert not [
        m
        for m in render_chart({"webhook": {"certManager": {"enabled": False}}})
        if m["metadata"]["name"].endswith("-console")
    ]


def test_the_console_service_account_has_only_what_everyone_has(console_account: ApiClient) -> None:
    for namespace in NAMESPACES:
        have, urls = effective_rights(console_account, namespace)
        assert describe(have - EVERYONE) == [], f"in {namespace} the console's ServiceAccount can do more"
        assert {verb for verb, _ in urls} == {"get"} and {url for _, url in urls} == DISCOVERY_URLS


def _refused(call: Any) -> str:
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 403, caught.value.body
    message: str = json.loads(caught.value.body)["message"]
    return message


def test_a_thief_with_the_console_s_token_can_neither_read_nor_decide(
    real_env: RealEnvironment, console_account: ApiClient
) -> None:
    custom = CustomObjectsApi(console_account)
    for call, what in (
        (lambda: custom.list_cluster_custom_object("jitgrant.dev", "v1alpha1", "accessrequests"), "list"),
        (lambda: custom.list_cluster_custom_object("jitgrant.dev", "v1alpha1", "grantpolicies"), "list"),
        (
            lambda: custom.patch_namespaced_custom_object(
                "jitgrant.dev",
                "v1alpha1",
                "agents",
                "accessrequests",
                "any",
                {"metadata": {"annotations": {"jitgrant.dev/approve": "stolen"}}},
            ),
            "patch",
        ),
        (lambda: CoreV1Api(console_account).list_namespaced_secret("agents"), "list"),
    ):
        message = _refused(call)
        assert f"cannot {what} resource" in message and "jitgrant-console" in message, message
