"""The aiohttp front: authentication, impersonation, authorization, routing, responses, watches."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from . import audit, discovery, errors, protobuf
from .authn import TokenAuthenticator, User
from .crud import Api, Call, patch_types
from .errors import ApiError, Cause
from .patching import APPLY, JSON_PATCH, MERGE, STRATEGIC
from .rbac import Attributes, forbidden_message
from .resources import ResourceType
from .reviews import review, token_request
from .selectors import (
    FieldSelector,
    Selector,
    parse_field_selector,
    parse_label_selector,
    selected_name,
)
from .watch import flag, serve_watch

logger = logging.getLogger("embedkube")
NAMESPACE_SUBRESOURCES = ("status", "finalize")
HEALTH = ("/healthz", "/livez", "/readyz")


@dataclass
class RequestInfo:
    """``k8s.io/apiserver/pkg/endpoints/request.RequestInfo``."""

    resource_request: bool
    path: str
    verb: str
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    selected_name: str = ""  # list/watch narrowed by fieldSelector metadata.name: what RBAC sees as the name


def parse_request(method: str, path: str, query: Mapping[str, str]) -> RequestInfo:
    parts = [p for p in path.strip("/").split("/") if p]
    verb = {
        "GET": "get",
        "HEAD": "get",
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete",
    }.get(method, method.lower())
    if not parts or parts[0] not in ("api", "apis"):
        return RequestInfo(False, path, verb)
    prefix_len = 2 if parts[0] == "api" else 3
    if len(parts) <= prefix_len:
        return RequestInfo(False, path, verb)
    group = "" if parts[0] == "api" else parts[1]
    version = parts[1] if parts[0] == "api" else parts[2]
    rest = parts[prefix_len:]
    watch_path = False
    if rest[0] == "watch":  # the deprecated /watch/ prefix
        watch_path, rest = True, rest[1:]
    info = RequestInfo(True, path, verb, group, version)
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        info.namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    if not rest:
        return RequestInfo(False, path, verb)
    info.resource = rest[0]
    info.name = rest[1] if len(rest) > 1 else ""
    info.subresource = rest[2] if len(rest) > 2 else ""
    if rest[0] == "namespaces" and len(rest) > 1:
        info.namespace = rest[1]  # a namespace is its own namespace, for authorization
    if len(rest) > 3:
        return RequestInfo(False, path, verb)
    if not info.name:
        if method in ("GET", "HEAD"):
            info.verb = "watch" if watch_path or flag(query.get("watch")) else "list"
        elif method == "DELETE":
            info.verb = "deletecollection"
        if info.verb in ("list", "watch"):
            selector = query.get("fieldSelector", "")
            if selector:
                with contextlib.suppress(ApiError):
                    info.selected_name = selected_name(parse_field_selector(selector, info.resource))
    elif watch_path:
        info.verb = "watch"
    return info


def _json(body: Any, status: int = 200, warnings: Iterable[str] = ()) -> web.Response:
    response = web.Response(status=status, text=json.dumps(body), content_type="application/json")
    for warning in warnings:
        response.headers.add("Warning", f'299 - "{warning}"')
    return response


def _error(exc: ApiError) -> web.Response:
    response = _json(exc.status(), exc.code)
    for key, value in exc.headers.items():
        response.headers[key] = value
    return response


class Server:
    def __init__(self, *, api: Api, authn: TokenAuthenticator, authorize: bool, address: str) -> None:
        self.api = api
        self.authn = authn
        self.authorize = authorize
        self.address = address
        self.app = web.Application(client_max_size=8 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    # ---- the front door ----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            if request.path in HEALTH:
                return web.Response(text="ok")
            user = await self._authenticate(request)
            request[audit.AUTHENTICATED_USER] = user  # what the audit log (embedkube/audit.py) reads
            user = request[audit.EFFECTIVE_USER] = self._impersonate(request, user)
            info = request[audit.REQUEST_INFO] = parse_request(request.method, request.path, request.query)
            request[audit.AUTHORIZATION_REASON] = self._authorize(user, info)
            if not info.resource_request:
                return self._non_resource(request, info)
            return await self._resource(request, user, info)
        except ApiError as exc:
            return _error(exc)
        except ValueError as exc:  # malformed query parameters and bodies
            return _error(errors.bad_request(str(exc)))
        except Exception as exc:  # a bug here must still answer as the API does, and be visible
            logger.exception("embedded cluster: %s %s failed", request.method, request.path)
            return _error(errors.internal(f"{type(exc).__name__}: {exc}"))

    async def _authenticate(self, request: web.Request) -> User:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.unauthorized()
        user = await self.authn.authenticate(token.strip())
        if user is None:
            raise errors.unauthorized()
        return user

    def _impersonate(self, request: web.Request, user: User) -> User:
        """``Impersonate-*`` headers, each allowed by the ``impersonate`` verb (kubectl --as/--as-group)."""
        name = request.headers.get("Impersonate-User", "")
        groups = tuple(request.headers.getall("Impersonate-Group", ()))
        uid = request.headers.get("Impersonate-Uid", "")
        extra: dict[str, tuple[str, ...]] = {}
        for key in request.headers:
            if key.lower().startswith("impersonate-extra-"):
                extra[key[len("impersonate-extra-") :].lower()] = tuple(request.headers.getall(key))
        if not name:
            if groups or uid or extra:
                raise errors.bad_request(
                    "requested impersonation of groups, uid or extra without impersonating a user"
                )
            return user
        checks: list[Attributes] = []
        if name.startswith("system:serviceaccount:") and name.count(":") == 3:
            _, _, sa_ns, sa_name = name.split(":")
            checks.append(Attributes(user, "impersonate", sa_ns, "", "serviceaccounts", name=sa_name))
        else:
            checks.append(Attributes(user, "impersonate", "", "", "users", name=name))
        checks.extend(Attributes(user, "impersonate", "", "", "groups", name=g) for g in groups)
        if uid:
            checks.append(Attributes(user, "impersonate", "", "authentication.k8s.io", "uids", name=uid))
        for key, values in extra.items():
            checks.extend(
                Attributes(user, "impersonate", "", "authentication.k8s.io", "userextras", key, v)
                for v in values
            )
        for attrs in checks:
            if self.authorize and not self.api.authorizer.allowed(attrs):
                raise errors.forbidden(attrs.resource, attrs.api_group, attrs.name, forbidden_message(attrs))
        all_groups = list(groups)
        if name.startswith("system:serviceaccount:") and name.count(":") == 3:
            sa_ns = name.split(":")[2]
            all_groups += [
                g
                for g in ("system:serviceaccounts", f"system:serviceaccounts:{sa_ns}")
                if g not in all_groups
            ]
        if name != "system:anonymous" and "system:authenticated" not in all_groups:
            all_groups.append("system:authenticated")
        return User(name, uid, tuple(all_groups), extra)

    def _authorize(self, user: User, info: RequestInfo) -> str | None:
        """The authorizer's reason when it allows (None when authorization is off); Forbidden if not."""
        if not self.authorize:
            return None
        attrs = Attributes(
            user,
            info.verb,
            info.namespace,
            info.group,
            info.resource,
            info.subresource,
            info.name or info.selected_name,
            info.resource_request,
            info.path,
        )
        allowed, reason = self.api.authorizer.authorize(attrs)
        if not allowed:
            raise errors.forbidden(info.resource, info.group, attrs.name, forbidden_message(attrs))
        return reason

    # ---- non-resource paths ------------------------------------------------------------------------

    def _non_resource(self, request: web.Request, info: RequestInfo) -> web.Response:
        path = info.path.rstrip("/") or "/"
        registry = self.api.registry
        parts = [p for p in path.split("/") if p]
        body: dict[str, Any] | None = None
        if path == "/version":
            body = dict(discovery.VERSION)
        elif path == "/api":
            body = discovery.api_versions(self.address)
        elif path == "/apis":
            body = discovery.api_group_list(registry)
        elif len(parts) == 2 and parts[0] == "api":
            body = discovery.api_resource_list(registry, "", parts[1])
        elif len(parts) == 2 and parts[0] == "apis":
            body = discovery.api_group(registry, parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            body = discovery.api_resource_list(registry, parts[1], parts[2])
        elif path == "/.well-known/openid-configuration":
            body = {
                "issuer": "https://kubernetes.default.svc.cluster.local",
                "jwks_uri": f"http://{self.address}/openid/v1/jwks",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
            }
        elif path == "/openapi/v3":
            body = discovery.openapi_root(registry)
        elif path.startswith("/openapi/v3/api/") and len(parts) == 4:
            body = discovery.openapi_group_version(registry, "", parts[3])
        elif path.startswith("/openapi/v3/apis/") and len(parts) == 5:
            body = discovery.openapi_group_version(registry, parts[3], parts[4])
        elif path == "/openid/v1/jwks":
            body = self.authn.jwks()
        if body is None:
            raise errors.path_not_found()
        if request.method not in ("GET", "HEAD"):
            raise errors.method_not_allowed()
        return _json(body)

    # ---- resources ---------------------------------------------------------------------------------

    def _resource_type(self, info: RequestInfo) -> ResourceType:
        rt = self.api.registry.get(info.group, info.version, info.resource)
        if rt is None:
            raise errors.path_not_found()
        if info.subresource and info.subresource not in rt.subresources:
            raise errors.path_not_found()
        if info.namespace and not rt.namespaced and rt.plural != "namespaces":
            raise errors.path_not_found()
        return rt

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        content_type = request.content_type
        if content_type == "application/vnd.kubernetes.protobuf":
            try:
                return protobuf.decode(raw)
            except (protobuf.ProtobufError, UnicodeDecodeError) as exc:
                raise errors.unsupported_media_type(
                    content_type, ["application/json", "application/yaml"]
                ) from exc
        try:
            if content_type in ("application/yaml", "application/apply-patch+yaml"):
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"error decoding request body: {exc}") from exc

    def _call(self, request: web.Request, user: User) -> Call:
        dry_run = request.query.getall("dryRun", [])
        if any(d != "All" for d in dry_run):
            wrong = next(d for d in dry_run if d != "All")
            message = f'Unsupported value: "{wrong}": supported values: "All"'
            cause = Cause("dryRun", "FieldValueNotSupported", message)
            raise errors.invalid("CreateOptions", "meta.k8s.io", "", [cause])
        validation = request.query.get("fieldValidation", "")
        if validation not in ("", "Strict", "Warn", "Ignore"):
            raise errors.bad_request(f"Invalid fieldValidation: {validation}")
        return Call(user=user, dry_run=bool(dry_run), field_validation=validation)

    async def _resource(self, request: web.Request, user: User, info: RequestInfo) -> web.StreamResponse:
        rt = self._resource_type(info)
        call = self._call(request, user)
        api, method = self.api, request.method
        namespace = "" if rt.plural == "namespaces" else info.namespace
        if rt.namespaced and not namespace and (info.name or method not in ("GET", "HEAD")):
            raise errors.path_not_found()
        if rt.virtual:
            if method != "POST" or info.name:
                raise errors.method_not_allowed()
            body = await self._body(request) or {}
            return _json(await review(api, self.authn, rt, call, namespace, body), 201)
        if not info.name:
            if method in ("GET", "HEAD"):
                if info.verb == "watch":
                    return await serve_watch(request, self.api, rt, namespace, *self._selectors(request, rt))
                return self._list(request, rt, namespace)
            if method == "POST":
                obj = await api.create(call, rt, namespace, await self._body(request))
                return _json(obj, 201, call.warnings)
            if method == "DELETE":
                return await self._delete_collection(request, call, rt, namespace)
            raise errors.method_not_allowed()
        name, sub = info.name, info.subresource
        if sub == "token":
            if method != "POST":
                raise errors.method_not_allowed()
            obj = await token_request(
                api, self.authn, call, rt, namespace, name, await self._body(request) or {}
            )
            return _json(obj, 201, call.warnings)
        if sub == "scale":
            return await self._scale(request, call, rt, namespace, name)
        if sub == "finalize":
            return await self._finalize(request, call, rt, name)
        if method in ("GET", "HEAD"):
            obj = api.get(rt, namespace, name)
            if not sub and "as=Table" in request.headers.get("Accept", ""):
                # As upstream, one object asked for as a Table is a one-row Table (kubectl get NAME).
                rv = str(obj["metadata"].get("resourceVersion", ""))
                return _json(discovery.table(rt, [obj], rv, self.api.clock.now()))
            return _json(obj)
        if method == "PUT":
            obj = await api.update(call, rt, namespace, name, await self._body(request), sub)
            return _json(obj, 200, call.warnings)
        if method == "PATCH":
            content_type = request.content_type
            if content_type not in (MERGE, JSON_PATCH, STRATEGIC) or (
                content_type == STRATEGIC and rt.custom
            ):
                raise errors.unsupported_media_type(content_type, patch_types(rt))
            obj = await api.patch(call, rt, namespace, name, content_type, await self._body(request), sub)
            return _json(obj, 200, call.warnings)
        if method == "DELETE" and not sub:
            options = dict(await self._body(request) or {})
            for key in ("propagationPolicy", "gracePeriodSeconds", "orphanDependents"):
                if key in request.query:
                    options[key] = request.query[key]
            obj, pending = await api.delete(call, rt, namespace, name, options)
            if pending or rt.custom or rt.plural in ("namespaces", "pods"):
                return _json(obj, 200, call.warnings)
            return _json(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        "group": rt.group,
                        "kind": rt.plural,
                        "uid": obj["metadata"].get("uid"),
                    },
                },
                200,
                call.warnings,
            )
        raise errors.method_not_allowed()

    def _selectors(self, request: web.Request, rt: ResourceType) -> tuple[Selector, FieldSelector]:
        return (
            parse_label_selector(request.query.get("labelSelector")),
            parse_field_selector(request.query.get("fieldSelector"), rt.plural),
        )

    def _list(self, request: web.Request, rt: ResourceType, namespace: str) -> web.Response:
        labels, fields = self._selectors(request, rt)
        items = self.api.objects(rt, namespace, labels, fields)
        rv = str(self.api.store.resource_version)
        meta: dict[str, Any] = {"resourceVersion": rv}
        limit = int(request.query.get("limit") or 0)
        start = 0
        if request.query.get("continue"):
            try:
                start = int(json.loads(base64.b64decode(request.query["continue"]))["start"])
            except (ValueError, KeyError, TypeError) as exc:
                raise errors.bad_request("continue key is not valid") from exc
        items = items[start:]
        if limit and len(items) > limit:
            meta["continue"] = base64.b64encode(
                json.dumps({"start": start + limit, "rv": rv}).encode()
            ).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        if "as=Table" in request.headers.get("Accept", ""):
            return _json(discovery.table(rt, items, rv, self.api.clock.now()))
        return _json(
            {"apiVersion": rt.api_version, "kind": f"{rt.kind}List", "metadata": meta, "items": items}
        )

    async def _delete_collection(
        self, request: web.Request, call: Call, rt: ResourceType, namespace: str
    ) -> web.Response:
        labels, fields = self._selectors(request, rt)
        options = dict(await self._body(request) or {})
        deleted = []
        for obj in self.api.objects(rt, namespace, labels, fields):
            meta = obj["metadata"]
            try:
                result, _ = await self.api.delete(call, rt, meta.get("namespace", ""), meta["name"], options)
            except ApiError as exc:
                if exc.code == 404:
                    continue
                raise
            deleted.append(result)
        return _json(
            {
                "apiVersion": rt.api_version,
                "kind": f"{rt.kind}List",
                "metadata": {"resourceVersion": str(self.api.store.resource_version)},
                "items": deleted,
            }
        )

    async def _scale(
        self, request: web.Request, call: Call, rt: ResourceType, namespace: str, name: str
    ) -> web.Response:
        deployment = self.api.get(rt, namespace, name)
        if request.method == "GET":
            return _json(_scale_view(deployment))
        if request.method not in ("PUT", "PATCH"):
            raise errors.method_not_allowed()
        body = await self._body(request)
        if request.method == "PATCH":
            from .patching import apply_patch

            body = apply_patch(request.content_type, _scale_view(deployment), body)
        replicas = ((body or {}).get("spec") or {}).get("replicas")
        deployment.setdefault("spec", {})["replicas"] = replicas
        deployment["metadata"].pop("resourceVersion", None)
        rv = ((body or {}).get("metadata") or {}).get("resourceVersion")
        if rv:
            deployment["metadata"]["resourceVersion"] = rv
        updated = await self.api.update(call, rt, namespace, name, deployment, "scale")
        return _json(_scale_view(updated), 200, call.warnings)

    async def _finalize(self, request: web.Request, call: Call, rt: ResourceType, name: str) -> web.Response:
        if request.method != "PUT":
            raise errors.method_not_allowed()
        body = await self._body(request) or {}
        old = self.api.store.get(rt.key, "", name)
        if old is None:
            raise errors.not_found(rt.plural, rt.group, name)
        new = json.loads(json.dumps(old))
        new.setdefault("spec", {})["finalizers"] = list((body.get("spec") or {}).get("finalizers") or [])
        stored = self.api.store.write(rt.key, new, old=old)
        self.api.reaper.maybe_finish_namespace(name)
        return _json(self.api.present(rt, stored), 200, call.warnings)


def _scale_view(deployment: Mapping[str, Any]) -> dict[str, Any]:
    meta = deployment["metadata"]
    selector = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": (deployment.get("spec") or {}).get("replicas", 1)},
        "status": {
            "replicas": (deployment.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
        },
    }


__all__ = ["APPLY", "RequestInfo", "Server", "parse_request"]
