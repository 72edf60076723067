"""Admission webhooks over HTTPS: matching, userInfo, mutation, denial, failurePolicy, timeouts."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from embedkube import EmbeddedCluster, User
from embedkube.tls import make_certificates
from jitgrant_testing.webhooks import Handler, WebhookServer, allow, deny, json_patch

from .conftest import GROUP, VERSION, Raw, widget

ADMISSION = "/apis/admissionregistration.k8s.io/v1"
CM = "/api/v1/namespaces/default/configmaps"
W = f"/apis/{GROUP}/{VERSION}/namespaces/default/widgets"


@pytest.fixture
def hooks() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


def register(
    raw: Raw,
    kind: str,
    url: str,
    ca_bundle: str,
    *,
    resources: list[str] | None = None,
    groups: list[str] | None = None,
    operations: list[str] | None = None,
    name: str = "check.example.com",
    **extra: Any,
) -> None:
    plural = "mutatingwebhookconfigurations" if kind == "Mutating" else "validatingwebhookconfigurations"
    hook = {
        "name": name,
        "clientConfig": {"url": url, "caBundle": ca_bundle},
        "rules": [
            {
                "operations": operations or ["CREATE", "UPDATE"],
                "apiGroups": groups if groups is not None else [""],
                "apiVersions": ["*"],
                "resources": resources or ["configmaps"],
            }
        ],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        **extra,
    }
    reply = raw.post(f"{ADMISSION}/{plural}", {"metadata": {"name": name}, "webhooks": [hook]})
    assert reply.status == 201, reply.body


def test_mutating_webhook_patches_and_sees_the_caller(
    cluster: EmbeddedCluster, raw: Raw, hooks: WebhookServer
) -> None:
    url = hooks.route(
        "/label", json_patch([{"op": "add", "path": "/metadata/labels", "value": {"stamped": "yes"}}])
    )
    register(raw, "Mutating", url, hooks.ca_bundle)
    token = cluster.add_user(User("alice", "uid-a", ("oncall",), {"reason": ("INC-1",)}))
    admin_rbac(raw, "alice")
    created = raw.post(CM, {"metadata": {"generateName": "cm-"}}, token=token).body
    assert created["metadata"]["labels"] == {"stamped": "yes"}
    request = hooks.requests["/label"][0]
    assert request["userInfo"] == {
        "username": "alice",
        "uid": "uid-a",
        "groups": ["oncall", "system:authenticated"],
        "extra": {"reason": ["INC-1"]},
    }
    assert request["operation"] == "CREATE"
    assert request["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert request["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert request["namespace"] == "default"
    assert request["name"] == ""  # generateName is expanded after mutating admission
    assert "uid" not in request["object"]["metadata"]  # ... and so is the uid
    assert request["oldObject"] is None and request["dryRun"] is False


def admin_rbac(raw: Raw, user: str) -> None:
    raw.post(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "metadata": {"name": f"{user}-admin"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}],
        },
    )


def test_validating_webhook_denies_with_its_message_and_code(raw: Raw, hooks: WebhookServer) -> None:
    register(raw, "Validating", hooks.route("/deny", deny("no configmaps today")), hooks.ca_bundle)
    reply = raw.post(CM, {"metadata": {"name": "a"}})
    assert (reply.status, reply.message) == (  # no code in the reply: 400, as upstream's ToStatusErr
        400,
        'admission webhook "check.example.com" denied the request: no configmaps today',
    )
    assert raw.get(CM + "/a").status == 404
    register(
        raw,
        "Validating",
        hooks.route("/teapot", deny("short and stout", 418)),
        hooks.ca_bundle,
        name="teapot.example.com",
        resources=["secrets"],
    )
    assert raw.post("/api/v1/namespaces/default/secrets", {"metadata": {"name": "s"}}).status == 418


def test_validating_webhook_sees_the_final_object(raw: Raw, hooks: WebhookServer) -> None:
    register(raw, "Validating", hooks.route("/seen", allow()), hooks.ca_bundle)
    raw.post(CM, {"metadata": {"generateName": "cm-"}})
    obj = hooks.requests["/seen"][0]["object"]
    assert obj["metadata"]["name"].startswith("cm-") and obj["metadata"]["uid"]


def test_update_and_delete_carry_the_old_object(raw: Raw, hooks: WebhookServer) -> None:
    raw.post(CM, {"metadata": {"name": "a"}, "data": {"v": "1"}})
    register(raw, "Validating", hooks.route("/all", allow()), hooks.ca_bundle, operations=["*"])
    raw.patch(CM + "/a", {"data": {"v": "2"}})
    raw.delete(CM + "/a")
    update, delete = hooks.requests["/all"]
    assert update["operation"] == "UPDATE"
    assert (update["oldObject"]["data"], update["object"]["data"]) == ({"v": "1"}, {"v": "2"})
    assert delete["operation"] == "DELETE" and delete["object"] is None
    assert delete["oldObject"]["metadata"]["name"] == "a"
    assert delete["options"]["kind"] == "DeleteOptions"


def test_failure_policy(raw: Raw, hooks: WebhookServer) -> None:
    register(
        raw,
        "Validating",
        "https://127.0.0.1:1/nothing-listens",
        hooks.ca_bundle,
        failurePolicy="Ignore",
        name="ignore.example.com",
    )
    assert raw.post(CM, {"metadata": {"name": "a"}}).status == 201
    register(
        raw,
        "Validating",
        "https://127.0.0.1:1/nothing-listens",
        hooks.ca_bundle,
        failurePolicy="Fail",
        name="fail.example.com",
    )
    reply = raw.post(CM, {"metadata": {"name": "b"}})
    assert (reply.status, reply.reason) == (500, "InternalError")
    assert reply.message.startswith('Internal error occurred: failed calling webhook "fail.example.com"')


def test_webhook_certificate_is_verified_against_the_ca_bundle(raw: Raw, hooks: WebhookServer) -> None:
    other_ca = base64.b64encode(make_certificates().ca_pem).decode()
    register(raw, "Validating", hooks.route("/ok", allow()), other_ca)
    reply = raw.post(CM, {"metadata": {"name": "a"}})
    assert reply.status == 500
    assert "certificate verify failed" in reply.message
    assert hooks.requests["/ok"] == []


def test_timeout(raw: Raw, hooks: WebhookServer) -> None:
    async def slow(request: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(1.5)
        return {"allowed": True}

    register(raw, "Validating", hooks.route("/slow", slow), hooks.ca_bundle, timeoutSeconds=1)
    reply = raw.post(CM, {"metadata": {"name": "a"}})
    assert reply.status == 500 and "context deadline exceeded" in reply.message


def test_status_subresource_needs_its_own_rule(raw: Raw, hooks: WebhookServer) -> None:
    raw.post(W, widget("w"))
    main: Handler = allow()
    register(
        raw,
        "Validating",
        hooks.route("/main", main),
        hooks.ca_bundle,
        groups=[GROUP],
        resources=["widgets"],
        name="main.example.com",
    )
    register(
        raw,
        "Validating",
        hooks.route("/status", deny("status is mine")),
        hooks.ca_bundle,
        groups=[GROUP],
        resources=["widgets/status"],
        name="status.example.com",
    )
    assert raw.patch(W + "/w", {"spec": {"size": 2}}).status == 200
    reply = raw.patch(W + "/w/status", {"status": {"phase": "Ready"}})
    assert reply.status == 400 and "status is mine" in reply.message
    assert len(hooks.requests["/main"]) == 1
    assert hooks.requests["/status"][0]["subResource"] == "status"


def test_selectors(raw: Raw, hooks: WebhookServer) -> None:
    raw.post("/api/v1/namespaces", {"metadata": {"name": "guarded", "labels": {"guard": "on"}}})
    register(
        raw,
        "Validating",
        hooks.route("/ns", deny("guarded namespace")),
        hooks.ca_bundle,
        namespaceSelector={"matchLabels": {"guard": "on"}},
        name="ns.example.com",
    )
    register(
        raw,
        "Validating",
        hooks.route("/obj", deny("guarded object")),
        hooks.ca_bundle,
        objectSelector={"matchExpressions": [{"key": "locked", "operator": "Exists"}]},
        name="obj.example.com",
    )
    assert raw.post(CM, {"metadata": {"name": "free"}}).status == 201
    assert raw.post("/api/v1/namespaces/guarded/configmaps", {"metadata": {"name": "a"}}).status == 400
    locked = raw.post(CM, {"metadata": {"name": "b", "labels": {"locked": "1"}}})
    assert locked.status == 400 and "guarded object" in locked.message


def test_warnings_are_passed_through(raw: Raw, hooks: WebhookServer) -> None:
    register(raw, "Validating", hooks.route("/warn", allow(warnings=["careful now"])), hooks.ca_bundle)
    reply = raw.post(CM, {"metadata": {"name": "a"}})
    assert reply.headers.get("Warning") == '299 - "careful now"'


def test_mutation_happens_before_schema_validation(raw: Raw, hooks: WebhookServer) -> None:
    fix = json_patch([{"op": "replace", "path": "/spec/size", "value": 3}])
    register(raw, "Mutating", hooks.route("/fix", fix), hooks.ca_bundle, groups=[GROUP], resources=["*"])
    created = raw.post(W, widget("w", 99))  # invalid as sent, valid after mutation
    assert created.status == 201 and created.body["spec"]["size"] == 3
    breaker = json_patch([{"op": "add", "path": "/spec/color", "value": "green"}])
    register(
        raw,
        "Mutating",
        hooks.route("/break", breaker),
        hooks.ca_bundle,
        groups=[GROUP],
        resources=["widgets"],
        name="zz-break.example.com",
    )
    assert raw.post(W, widget("w2")).status == 422


def test_webhook_configurations_are_not_sent_to_webhooks(raw: Raw, hooks: WebhookServer) -> None:
    register(
        raw,
        "Validating",
        hooks.route("/all", deny("nothing")),
        hooks.ca_bundle,
        groups=["*"],
        resources=["*"],
        operations=["*"],
    )
    assert raw.delete(f"{ADMISSION}/validatingwebhookconfigurations/check.example.com").status == 200
    assert raw.post(CM, {"metadata": {"name": "a"}}).status == 201


def test_a_webhook_with_side_effects_cannot_be_registered(raw: Raw, hooks: WebhookServer) -> None:
    """admissionregistration/v1 allows only None and NoneOnDryRun (Some/Unknown were v1beta1), so a
    dry run can never reach a webhook with side effects: the configuration itself is refused."""
    hook = {
        "name": "side.example.com",
        "clientConfig": {"url": hooks.route("/side", allow()), "caBundle": hooks.ca_bundle},
        "rules": [
            {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["*"], "resources": ["configmaps"]}
        ],
        "sideEffects": "Some",
        "admissionReviewVersions": ["v1"],
    }
    body = {"metadata": {"name": "side"}, "webhooks": [hook]}
    reply = raw.post(f"{ADMISSION}/validatingwebhookconfigurations", body)
    assert reply.status == 422
    assert 'webhooks[0].sideEffects: Unsupported value: "Some"' in reply.message
    assert raw.post(CM + "?dryRun=All", {"metadata": {"name": "a"}}).status == 201


def test_a_write_during_a_slow_webhook_is_not_lost(raw: Raw, hooks: WebhookServer) -> None:
    """A patch waiting on admission is re-applied to the newer object, as GuaranteedUpdate does."""
    raw.post(CM, {"metadata": {"name": "a"}, "data": {}})

    async def slow_for_a(request: dict[str, Any]) -> dict[str, Any]:
        data = (request["object"] or {}).get("data") or {}
        if "a" in data and "b" not in data:
            await asyncio.sleep(0.5)
        return {"allowed": True}

    register(raw, "Validating", hooks.route("/slow", slow_for_a), hooks.ca_bundle, operations=["UPDATE"])
    first = threading.Thread(target=lambda: raw.patch(CM + "/a", {"data": {"a": "1"}}))
    first.start()
    time.sleep(0.2)  # the first patch is now waiting on the webhook
    assert raw.patch(CM + "/a", {"data": {"b": "2"}}).status == 200
    first.join(10)
    assert raw.get(CM + "/a").body["data"] == {"a": "1", "b": "2"}
    stale = raw.get(CM + "/a").body
    stale["data"] = {"c": "3"}
    raw.patch(CM + "/a", {"data": {"d": "4"}})
    assert raw.put(CM + "/a", stale).status == 409


def test_service_references_are_reached_through_map_service(
    cluster: EmbeddedCluster, raw: Raw, hooks: WebhookServer
) -> None:
    hooks.route("/svc/validate", deny("via the service"))
    hook = {
        "name": "svc.example.com",
        "clientConfig": {
            "service": {"namespace": "jitgrant", "name": "webhook", "port": 8443, "path": "/validate"},
            "caBundle": hooks.ca_bundle,
        },
        "rules": [
            {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}
        ],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    raw.post(
        f"{ADMISSION}/validatingwebhookconfigurations", {"metadata": {"name": "svc"}, "webhooks": [hook]}
    )
    unmapped = raw.post(CM, {"metadata": {"name": "a"}})
    assert unmapped.status == 500 and "webhook.jitgrant.svc" in unmapped.message
    cluster.map_service(
        lambda ns, name, port: f"https://127.0.0.1:{hooks.port}/svc" if port == 8443 else None
    )
    mapped = raw.post(CM, {"metadata": {"name": "a"}})
    assert mapped.status == 400 and "via the service" in mapped.message


# ---- reply checks: what upstream's VerifyAdmissionResponse refuses (tests/probes/ compares the
# messages with a real kube-apiserver, including a wrong uid or apiVersion, which this server can't send)

PATCH = base64.b64encode(b'[{"op": "add", "path": "/metadata/labels", "value": {"p": "y"}}]').decode()


def reply(**response: Any) -> Handler:
    async def handler(request: dict[str, Any]) -> dict[str, Any]:
        return dict(response)

    return handler


def test_a_patch_without_patch_type_is_an_invalid_reply_that_failure_policy_decides(
    raw: Raw, hooks: WebhookServer
) -> None:
    url = hooks.route("/untyped", reply(allowed=True, patch=PATCH))
    register(raw, "Mutating", url, hooks.ca_bundle, name="untyped.example.com", failurePolicy="Fail")
    refused = raw.post(CM, {"metadata": {"name": "a"}})
    assert (refused.status, refused.reason, refused.message) == (
        500,
        "InternalError",
        'Internal error occurred: failed calling webhook "untyped.example.com": received invalid webhook '
        "response: webhook returned response.patch but not response.patchType",
    )
    assert raw.get(CM + "/a").status == 404
    raw.delete(f"{ADMISSION}/mutatingwebhookconfigurations/untyped.example.com")
    register(raw, "Mutating", url, hooks.ca_bundle, name="ignored.example.com", failurePolicy="Ignore")
    created = raw.post(CM, {"metadata": {"name": "b"}})
    assert created.status == 201 and "labels" not in created.body["metadata"]  # ignored, not applied


def test_a_patch_type_without_a_patch_and_a_validating_webhooks_patch_are_refused(
    raw: Raw, hooks: WebhookServer
) -> None:
    register(
        raw, "Mutating", hooks.route("/typed", reply(allowed=True, patchType="JSONPatch")), hooks.ca_bundle
    )
    assert (
        "webhook returned response.patchType but not response.patch"
        in raw.post(CM, {"metadata": {"name": "a"}}).message
    )
    raw.delete(f"{ADMISSION}/mutatingwebhookconfigurations/check.example.com")
    url = hooks.route("/vpatch", reply(allowed=True, patchType="JSONPatch", patch=PATCH))
    register(raw, "Validating", url, hooks.ca_bundle)
    refused = raw.post(CM, {"metadata": {"name": "a"}})
    assert refused.status == 500
    assert refused.message.endswith(
        "received invalid webhook response: validating webhook may not return response.patch"
    )


def test_an_undecodable_or_unsupported_patch_is_refused(raw: Raw, hooks: WebhookServer) -> None:
    url = hooks.route("/merge", reply(allowed=True, patchType="MergePatch", patch=PATCH))
    register(raw, "Mutating", url, hooks.ca_bundle, name="merge.example.com", operations=["CREATE"])
    assert raw.post(CM, {"metadata": {"name": "a"}}).message == (
        'Internal error occurred: failed calling webhook "merge.example.com": '
        'unsupported patch type "MergePatch"'
    )
    raw.delete(f"{ADMISSION}/mutatingwebhookconfigurations/merge.example.com")
    not_a_list = base64.b64encode(b'{"op": "add"}').decode()
    register(
        raw,
        "Mutating",
        hooks.route("/obj", reply(allowed=True, patchType="JSONPatch", patch=not_a_list)),
        hooks.ca_bundle,
    )
    refused = raw.post(CM, {"metadata": {"name": "a"}})
    assert refused.status == 500
    assert "received undecodable patch in webhook response: json: cannot unmarshal object" in refused.message


def test_a_denial_without_a_code_is_400_without_a_reason_and_keeps_its_warnings(
    raw: Raw, hooks: WebhookServer
) -> None:
    url = hooks.route("/no", reply(allowed=False, warnings=["think again"], status={"message": "no"}))
    register(raw, "Validating", url, hooks.ca_bundle)
    refused = raw.post(CM, {"metadata": {"name": "a"}})
    assert (refused.status, refused.message) == (
        400,
        'admission webhook "check.example.com" denied the request: no',
    )
    assert "reason" not in refused.body  # upstream's Status omits an empty reason
    assert refused.headers.get("Warning") == '299 - "think again"'
