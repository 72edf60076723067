"""The admission side of a kube-apiserver, just enough to drive jitgrant's webhooks as a cluster would.

`WebhookEndpoint` runs kopf's real `WebhookServer` over HTTPS (certificates from our webhook_tls) with
kopf's real admission engine and a fresh registry holding only jitgrant's webhooks, and posts
AdmissionReview v1 requests to it. `AdmissionChain` does what the API server does around the webhooks:
call the mutating webhook, apply its JSONPatch, fill in uid/creationTimestamp on CREATE, call the
validating webhook, and store the object only if both allowed it. It is no substitute for the
embedded cluster (no RBAC, no CEL); the webhooks are what is under test here.

kopf has no public API to serve admission requests without a cluster (resource discovery is what
starts its webhook server), so this wires the same internal pieces kopf's own tests use.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import jsonpatch
import kopf
from kopf._cogs.structs import references
from kopf._core.engines.admission import serve_admission_request
from kopf._core.engines.indexing import OperatorIndexers
from kopf._core.reactor.inventory import ResourceMemories

from jitgrant.models import API_GROUP, API_VERSION
from jitgrant.operator import admission
from jitgrant_testing.tls import WebhookTLS, webhook_server

RESOURCE = {"group": API_GROUP, "version": API_VERSION, "resource": "accessrequests"}
KIND = {"group": API_GROUP, "version": API_VERSION, "kind": "AccessRequest"}


def user(username: str, *groups: str, uid: str | None = None) -> dict[str, Any]:
    return {
        "username": username,
        "uid": uid or f"uid-{username}",
        "groups": [*groups, "system:authenticated"],
    }


@dataclass(frozen=True)
class Answer:
    """One AdmissionReview response, decoded."""

    allowed: bool
    code: int | None
    message: str
    patch: list[dict[str, Any]]
    raw: dict[str, Any]


@dataclass
class WebhookEndpoint:
    url: str
    ssl: ssl.SSLContext
    session: aiohttp.ClientSession
    ca_pem: bytes  # what a webhook configuration's caBundle must hold

    async def review(
        self,
        handler_id: str,
        *,
        operation: str,
        obj: dict[str, Any],
        old: dict[str, Any] | None = None,
        userinfo: dict[str, Any],
        dry_run: bool = False,
        subresource: str | None = None,
    ) -> Answer:
        meta = obj.get("metadata") or {}
        request: dict[str, Any] = {
            "uid": str(uuid.uuid4()),
            "kind": KIND,
            "resource": RESOURCE,
            "requestKind": KIND,
            "requestResource": RESOURCE,
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace"),
            "operation": operation,
            "userInfo": userinfo,
            "object": obj,
            "oldObject": old,
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": f"{operation.title()}Options"},
        }
        if subresource is not None:
            request["subResource"] = subresource
            request["requestSubResource"] = subresource
        payload = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
        async with self.session.post(f"{self.url}/{handler_id}", json=payload, ssl=self.ssl) as response:
            assert response.status == 200, await response.text()
            data = await response.json()
        body = data["response"]
        assert body["uid"] == request["uid"]
        patch: list[dict[str, Any]] = []
        if "patch" in body:
            assert body["patchType"] == "JSONPatch"
            patch = json.loads(base64.b64decode(body["patch"]))
        status = body.get("status") or {}
        return Answer(
            allowed=body["allowed"],
            code=status.get("code"),
            message=status.get("message", ""),
            patch=patch,
            raw=data,
        )


@asynccontextmanager
async def running_webhooks(
    *, tls: WebhookTLS, runtime: Any, client_ssl: ssl.SSLContext, client_ca_pem: bytes | None = None
) -> AsyncIterator[WebhookEndpoint]:
    registry = kopf.OperatorRegistry()
    admission.register(registry)
    insights = references.Insights()
    insights.webhook_resources.add(references.Resource(API_GROUP, API_VERSION, "accessrequests"))
    memo = kopf.Memo()
    memo.runtime = runtime
    fn = functools.partial(
        serve_admission_request,
        settings=kopf.OperatorSettings(),
        registry=registry,
        insights=insights,
        memories=ResourceMemories(),
        memobase=memo,
        indices=OperatorIndexers().indices,
    )
    # port 0: kopf picks a free port and reports it in the client config's URL.
    server = webhook_server(tls=tls, port=0, addr="127.0.0.1", host="127.0.0.1", client_ca_pem=client_ca_pem)
    async with server:
        async for config in server(fn):
            url = config["url"]
            assert base64.b64decode(config["caBundle"]) == tls.ca_pem
            break
        async with aiohttp.ClientSession() as session:
            yield WebhookEndpoint(url=url, ssl=client_ssl, session=session, ca_pem=tls.ca_pem)


@dataclass
class Outcome:
    allowed: bool
    stage: str  # "mutate", "validate" or "stored"
    code: int | None
    message: str
    object: dict[str, Any] | None


@dataclass
class AdmissionChain:
    """Create and update AccessRequests through the webhooks as the API server would."""

    endpoint: WebhookEndpoint
    store: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    mutating: bool = True  # False: the mutating webhook is missing or bypassed
    validating: bool = True

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.store[(namespace, name)])

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Write an object straight into storage, as if every webhook were bypassed."""
        stored = copy.deepcopy(obj)
        meta = stored["metadata"]
        meta.setdefault("uid", str(uuid.uuid4()))
        self.store[(meta["namespace"], meta["name"])] = stored
        return copy.deepcopy(stored)

    async def _mutate(
        self,
        *,
        operation: str,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        userinfo: dict[str, Any],
        dry_run: bool,
    ) -> tuple[Answer | None, dict[str, Any]]:
        if not self.mutating:
            return None, obj
        answer = await self.endpoint.review(
            admission.MUTATE_ID, operation=operation, obj=obj, old=old, userinfo=userinfo, dry_run=dry_run
        )
        if not answer.allowed:
            return answer, obj
        return answer, jsonpatch.apply_patch(obj, answer.patch) if answer.patch else obj

    async def create(
        self, obj: dict[str, Any], *, userinfo: dict[str, Any], dry_run: bool = False
    ) -> Outcome:
        obj = copy.deepcopy(obj)
        answer, obj = await self._mutate(
            operation="CREATE", obj=obj, old=None, userinfo=userinfo, dry_run=dry_run
        )
        if answer is not None and not answer.allowed:
            return Outcome(False, "mutate", answer.code, answer.message, None)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.validating:
            verdict = await self.endpoint.review(
                admission.VALIDATE_ID, operation="CREATE", obj=obj, userinfo=userinfo, dry_run=dry_run
            )
            if not verdict.allowed:
                return Outcome(False, "validate", verdict.code, verdict.message, None)
        if not dry_run:
            self.store[(meta["namespace"], meta["name"])] = copy.deepcopy(obj)
        return Outcome(True, "stored", None, "", copy.deepcopy(obj))

    async def update(
        self, namespace: str, name: str, change: Callable[[dict[str, Any]], None], *, userinfo: dict[str, Any]
    ) -> Outcome:
        old = self.get(namespace, name)
        new = copy.deepcopy(old)
        change(new)
        new["status"] = copy.deepcopy(old.get("status"))  # the main resource cannot write status
        if new["status"] is None:
            new.pop("status")
        answer, new = await self._mutate(
            operation="UPDATE", obj=new, old=old, userinfo=userinfo, dry_run=False
        )
        if answer is not None and not answer.allowed:
            return Outcome(False, "mutate", answer.code, answer.message, None)
        if self.validating:
            verdict = await self.endpoint.review(
                admission.VALIDATE_ID, operation="UPDATE", obj=new, old=old, userinfo=userinfo
            )
            if not verdict.allowed:
                return Outcome(False, "validate", verdict.code, verdict.message, None)
        self.store[(namespace, name)] = copy.deepcopy(new)
        return Outcome(True, "stored", None, "", copy.deepcopy(new))

    async def update_status(
        self, namespace: str, name: str, status: dict[str, Any], *, userinfo: dict[str, Any]
    ) -> Outcome:
        old = self.get(namespace, name)
        new = {**copy.deepcopy(old), "status": status}
        verdict = await self.endpoint.review(
            admission.STATUS_ID, operation="UPDATE", obj=new, old=old, userinfo=userinfo, subresource="status"
        )
        if not verdict.allowed:
            return Outcome(False, "validate", verdict.code, verdict.message, None)
        self.store[(namespace, name)] = new
        return Outcome(True, "stored", None, "", copy.deepcopy(new))
