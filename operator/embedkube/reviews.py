"""Create-only "review" resources and the ServiceAccount TokenRequest subresource.

Access reviews are answered by the same RBAC authorizer that guards requests, so ``kubectl auth
can-i`` and a SubjectAccessReview see exactly what a request would.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from . import errors
from .authn import API_AUDIENCE, TokenAuthenticator, User
from .clock import rfc3339
from .crud import Api, Call
from .errors import Cause
from .rbac import Attributes
from .resources import ResourceType

MIN_TOKEN_SECONDS = 600  # documented minimum of TokenRequest expirationSeconds
DEFAULT_TOKEN_SECONDS = 3600


def _attributes(user: User, spec: Mapping[str, Any], namespace_override: str | None = None) -> Attributes:
    res = spec.get("resourceAttributes")
    if res is not None:
        return Attributes(
            user,
            res.get("verb", ""),
            namespace_override if namespace_override is not None else res.get("namespace", ""),
            res.get("group", ""),
            res.get("resource", ""),
            res.get("subresource", ""),
            res.get("name", ""),
        )
    non = spec.get("nonResourceAttributes") or {}
    return Attributes(user, non.get("verb", ""), resource_request=False, path=non.get("path", ""))


def _reply(rt: ResourceType, body: Mapping[str, Any], status: dict[str, Any], now: str) -> dict[str, Any]:
    out = {
        "apiVersion": rt.api_version,
        "kind": rt.kind,
        "metadata": {**copy.deepcopy(dict(body.get("metadata") or {})), "creationTimestamp": None},
        "spec": copy.deepcopy(body.get("spec") or {}),
        "status": status,
    }
    del now
    return out


def _access_status(api: Api, attrs: Attributes) -> dict[str, Any]:
    allowed, reason = api.authorizer.authorize(attrs)
    status: dict[str, Any] = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return status


async def review(
    api: Api, authn: TokenAuthenticator, rt: ResourceType, call: Call, namespace: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    spec = body.get("spec") or {}
    now = rfc3339(api.clock.now())
    if rt.plural == "selfsubjectaccessreviews":
        return _reply(rt, body, _access_status(api, _attributes(call.user, spec)), now)
    if rt.plural in ("subjectaccessreviews", "localsubjectaccessreviews"):
        if not spec.get("user") and not spec.get("groups"):
            raise errors.invalid(
                rt.kind,
                rt.group,
                "",
                [
                    Cause(
                        "spec.user",
                        "FieldValueInvalid",
                        'Invalid value: "": at least one of user or group must be specified',
                    )
                ],
            )
        subject = User(
            spec.get("user", ""),
            spec.get("uid", ""),
            tuple(spec.get("groups") or ()),
            {k: tuple(v) for k, v in (spec.get("extra") or {}).items()},
        )
        if rt.plural == "localsubjectaccessreviews":
            res_ns = (spec.get("resourceAttributes") or {}).get("namespace", "")
            if res_ns and res_ns != namespace:
                raise errors.invalid(
                    rt.kind,
                    rt.group,
                    "",
                    [
                        Cause(
                            "spec.resourceAttributes.namespace",
                            "FieldValueInvalid",
                            f'Invalid value: "{res_ns}": must match metadata.namespace',
                        )
                    ],
                )
            return _reply(rt, body, _access_status(api, _attributes(subject, spec, namespace)), now)
        return _reply(rt, body, _access_status(api, _attributes(subject, spec)), now)
    if rt.plural == "selfsubjectrulesreviews":
        return _reply(rt, body, rules_review(api, call.user, spec.get("namespace", "")), now)
    if rt.plural == "selfsubjectreviews":
        return {
            "apiVersion": rt.api_version,
            "kind": rt.kind,
            "metadata": {"creationTimestamp": now},
            "status": {"userInfo": call.user.user_info()},
        }
    if rt.plural == "tokenreviews":
        audiences = tuple(spec.get("audiences") or (API_AUDIENCE,))
        user, error = await authn.review(spec.get("token", ""), audiences)
        # `authenticated` is omitempty upstream: a refused token's status simply lacks it.
        status: dict[str, Any] = {"user": {}}
        if user is not None:
            status["authenticated"] = True
            status["user"] = user.user_info()
            status["audiences"] = list(audiences)
        elif error:
            status["error"] = error
        return _reply(rt, body, status, now)
    raise errors.method_not_allowed()


def rules_review(api: Api, user: User, namespace: str) -> dict[str, Any]:
    resource_rules: list[dict[str, Any]] = []
    non_resource: list[dict[str, Any]] = []
    for rule, _ in api.authorizer.visit(user, namespace):
        if rule.get("nonResourceURLs"):
            non_resource.append(
                {"verbs": list(rule["verbs"]), "nonResourceURLs": list(rule["nonResourceURLs"])}
            )
        else:
            entry = {
                k: list(rule[k]) for k in ("verbs", "apiGroups", "resources", "resourceNames") if rule.get(k)
            }
            resource_rules.append(entry)
    if "system:masters" in user.groups:
        resource_rules.insert(0, {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
        non_resource.insert(0, {"verbs": ["*"], "nonResourceURLs": ["*"]})
    return {"resourceRules": resource_rules, "nonResourceRules": non_resource, "incomplete": False}


async def token_request(
    api: Api,
    authn: TokenAuthenticator,
    call: Call,
    rt: ResourceType,
    namespace: str,
    name: str,
    body: Mapping[str, Any],
) -> dict[str, Any]:
    """``POST .../serviceaccounts/NAME/token``: a bound, expiring token for that ServiceAccount."""
    sa = api.get(rt, namespace, name)
    spec = dict(body.get("spec") or {})
    seconds = int(spec.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS)
    if seconds < MIN_TOKEN_SECONDS:
        raise errors.invalid(
            "TokenRequest",
            "authentication.k8s.io",
            name,
            [
                Cause(
                    "spec.expirationSeconds",
                    "FieldValueInvalid",
                    f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
                )
            ],
        )
    if seconds > 2**32:
        raise errors.invalid(
            "TokenRequest",
            "authentication.k8s.io",
            name,
            [
                Cause(
                    "spec.expirationSeconds",
                    "FieldValueTooLong",
                    f"Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds",
                )
            ],
        )
    audiences = list(spec.get("audiences") or [API_AUDIENCE])
    bound = spec.get("boundObjectRef")
    if bound:
        bound = _resolve_bound_object(api, namespace, name, bound)
        spec["boundObjectRef"] = bound
    from .admission import Attributes as AdmissionAttrs

    attrs = AdmissionAttrs(
        rt=rt,
        subresource="token",
        operation="CREATE",
        namespace=namespace,
        name=name,
        user=call.user,
        dry_run=call.dry_run,
        warnings=call.warnings,
    )
    request: dict[str, Any] = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {**spec, "audiences": audiences, "expirationSeconds": seconds},
    }
    await api.webhooks.validate(attrs, request, None)
    expires = api.clock.now() + timedelta(seconds=seconds)
    token = (
        ""
        if call.dry_run
        else authn.issue_sa_token(
            namespace=namespace,
            name=name,
            uid=sa["metadata"]["uid"],
            audiences=audiences,
            expires=expires,
            bound=bound,
        )
    )
    request["metadata"]["creationTimestamp"] = rfc3339(api.clock.now())
    request["status"] = {"token": token, "expirationTimestamp": rfc3339(expires)}
    return request


_BOUND_KINDS = {"Pod": "pods", "Secret": "secrets", "Node": "nodes"}


def _resolve_bound_object(api: Any, namespace: str, sa_name: str, bound: Mapping[str, Any]) -> dict[str, Any]:
    """As upstream's TokenREST: only a Pod, Secret or Node (v1) that exists, with the given uid if any."""
    kind, obj_name = bound.get("kind"), str(bound.get("name") or "")
    plural = _BOUND_KINDS.get(str(kind))
    if plural is None or bound.get("apiVersion", "v1") != "v1":
        raise errors.bad_request(
            f'cannot bind token for serviceaccount "{sa_name}" to object of type '
            f"{bound.get('apiVersion')}, Kind={kind}"
        )
    where = "" if kind == "Node" else namespace
    obj = api.store.peek(("", plural), where, obj_name)
    if obj is None:
        raise errors.not_found(plural, "", obj_name)
    uid = str(obj["metadata"]["uid"])
    if bound.get("uid") and bound["uid"] != uid:
        raise errors.conflict(
            plural,
            "",
            obj_name,
            f"the UID in the bound object reference ({bound['uid']}) does not match the UID in record. "
            "The object might have been deleted and then recreated",
        )
    return {**bound, "apiVersion": "v1", "uid": uid}
