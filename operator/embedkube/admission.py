"""Dynamic admission: calling MutatingWebhookConfigurations and ValidatingWebhookConfigurations.

Webhooks are called over HTTPS, verifying the server certificate against ``clientConfig.caBundle``
(or the system trust store when it is empty). Mutating webhooks run in configuration-name order,
each once (no reinvocation), then validating webhooks. Webhook configurations themselves are never
sent to webhooks, as in the real server, so a broken webhook cannot lock its own fix out.

Replies are checked as k8s.io/apiserver's VerifyAdmissionResponse and mutating dispatcher do, with
the same outcomes and message text (tests/probes/ compares them with a real kube-apiserver): a reply
that is not a v1 AdmissionReview, a wrong response.uid, a patch without patchType (or the reverse), a
patch from a validating webhook, an undecodable patch or a patchType other than JSONPatch is a failure
to call the webhook (failurePolicy decides; Fail is a 500); a patch that does not apply is a 500
whatever the policy; a denial keeps the webhook's code (400 when below 400), reason and details, and
the response still carries the warnings given so far.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import ssl
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .authn import User
from .errors import ApiError, internal
from .patching import json_patch
from .resources import ADMISSION, SUBRESOURCE_KIND, ResourceType
from .selectors import from_label_selector, labels_match
from .store import Store

MUTATING = (ADMISSION, "mutatingwebhookconfigurations")
VALIDATING = (ADMISSION, "validatingwebhookconfigurations")
ServiceMapper = Callable[[str, str, int], str | None]


@dataclass
class Attributes:
    rt: ResourceType
    subresource: str
    operation: str  # CREATE, UPDATE, DELETE
    namespace: str
    name: str
    user: User
    dry_run: bool = False
    options: Mapping[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


def _rule_matches(rule: Mapping[str, Any], attrs: Attributes) -> bool:
    ops = rule.get("operations") or ()
    if "*" not in ops and attrs.operation not in ops:
        return False
    groups, versions = rule.get("apiGroups") or (), rule.get("apiVersions") or ()
    if "*" not in groups and attrs.rt.group not in groups:
        return False
    if "*" not in versions and attrs.rt.version not in versions:
        return False
    scope = rule.get("scope") or "*"
    if (scope == "Cluster" and attrs.rt.namespaced) or (scope == "Namespaced" and not attrs.rt.namespaced):
        return False
    for resource in rule.get("resources") or ():
        res, _, sub = resource.partition("/")
        if (res == "*" or res == attrs.rt.plural) and (sub == "*" or sub == attrs.subresource):
            return True
    return False


class WebhookCaller:
    def __init__(self, store: Store, *, map_service: ServiceMapper | None = None) -> None:
        self._store = store
        self.map_service = map_service
        # Building a context loads the trust store (~17 ms): one per caBundle, reused for every call.
        self._contexts: dict[str, ssl.SSLContext] = {}
        # One session for every call, created lazily on the server's loop and closed by close().
        # Connections are not kept alive: a webhook server (the operator's, in tests and the demo)
        # that stops while holding an idle TLS connection from us waits for a close_notify that
        # never comes and leaks the socket. The handshake costs ~1 ms; the context was the 17 ms.
        self._session: aiohttp.ClientSession | None = None

    def _context(self, ca_bundle: str) -> ssl.SSLContext:
        context = self._contexts.get(ca_bundle)
        if context is None:
            if ca_bundle:
                context = ssl.create_default_context(cadata=base64.b64decode(ca_bundle).decode())
            else:
                context = ssl.create_default_context()
            self._contexts[ca_bundle] = context
        return context

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64, force_close=True))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- matching -------------------------------------------------------------------------------

    def _namespace_labels(self, attrs: Attributes, obj: Mapping[str, Any] | None) -> dict[str, str] | None:
        if attrs.rt.group == "" and attrs.rt.plural == "namespaces":
            return dict(((obj or {}).get("metadata") or {}).get("labels") or {})
        if not attrs.rt.namespaced:
            return None  # cluster-scoped objects are never excluded by a namespaceSelector
        ns = self._store.peek(("", "namespaces"), "", attrs.namespace)
        return dict(((ns or {}).get("metadata") or {}).get("labels") or {})

    def _webhook_matches(
        self,
        hook: Mapping[str, Any],
        attrs: Attributes,
        obj: Mapping[str, Any] | None,
        old: Mapping[str, Any] | None,
    ) -> bool:
        if not any(_rule_matches(r, attrs) for r in hook.get("rules") or ()):
            return False
        ns_selector = from_label_selector(hook.get("namespaceSelector") or {}) or ()
        ns_labels = self._namespace_labels(attrs, obj)
        if ns_labels is not None and not labels_match(ns_selector, ns_labels):
            return False
        obj_selector = from_label_selector(hook.get("objectSelector") or {}) or ()
        if obj_selector:
            candidates = [x for x in (obj, old) if x is not None]
            if not any(
                labels_match(obj_selector, (c.get("metadata") or {}).get("labels") or {}) for c in candidates
            ):
                return False
        return True

    def _hooks(
        self,
        key: tuple[str, str],
        attrs: Attributes,
        obj: Mapping[str, Any] | None,
        old: Mapping[str, Any] | None,
    ) -> list[Mapping[str, Any]]:
        if attrs.rt.group == ADMISSION:
            return []
        out = []
        for config in self._store.view(key):  # sorted by name, the documented order; read only
            for hook in config.get("webhooks") or ():
                if self._webhook_matches(hook, attrs, obj, old):
                    out.append(hook)
        return out

    def intercepts(self, attrs: Attributes, obj: Mapping[str, Any]) -> bool:
        """Whether any webhook (mutating or validating) is called for this request on `obj`."""
        return any(self._hooks(key, attrs, None, obj) for key in (MUTATING, VALIDATING))

    # ---- the review -----------------------------------------------------------------------------

    def _review(
        self, attrs: Attributes, obj: Mapping[str, Any] | None, old: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        rt = attrs.rt
        group, version, kind = SUBRESOURCE_KIND.get(
            (rt.plural, attrs.subresource), (rt.group, rt.version, rt.kind)
        )
        resource = {"group": rt.group, "version": rt.version, "resource": rt.plural}
        request: dict[str, Any] = {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": resource,
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": resource,
            "name": attrs.name,
            "operation": attrs.operation,
            "userInfo": attrs.user.user_info(),
            "object": copy.deepcopy(obj) if obj is not None else None,
            "oldObject": copy.deepcopy(old) if old is not None else None,
            "dryRun": attrs.dry_run,
            "options": dict(attrs.options) if attrs.options is not None else None,
        }
        if attrs.subresource:
            request["subResource"] = attrs.subresource
            request["requestSubResource"] = attrs.subresource
        if rt.namespaced:
            request["namespace"] = attrs.namespace
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}

    def _url(self, hook: Mapping[str, Any]) -> str:
        config = hook.get("clientConfig") or {}
        if config.get("url"):
            return str(config["url"])
        service = config.get("service") or {}
        mapped = None
        if self.map_service is not None:
            mapped = self.map_service(
                service.get("namespace", ""), service.get("name", ""), int(service.get("port", 443))
            )
        if mapped is None:
            host = f"{service.get('name')}.{service.get('namespace')}.svc"
            raise ConnectionError(
                f'service "{host}" is not reachable from the embedded cluster (see map_service)'
            )
        return mapped.rstrip("/") + (service.get("path") or "")

    async def _call(
        self, hook: Mapping[str, Any], review: Mapping[str, Any], mutating: bool
    ) -> dict[str, Any]:
        url = self._url(hook)
        context = self._context(str((hook.get("clientConfig") or {}).get("caBundle") or ""))
        timeout = aiohttp.ClientTimeout(total=float(hook.get("timeoutSeconds") or 10))
        body = await self._post(url, review, context, timeout)
        return _verify(body, review["request"]["uid"], mutating)

    async def _post(
        self, url: str, review: Mapping[str, Any], context: ssl.SSLContext, limits: aiohttp.ClientTimeout
    ) -> Any:
        async with self._client().post(url, json=review, ssl=context, timeout=limits) as response:
            if response.status != 200:
                raise ConnectionError(
                    f"received {response.status} from webhook: {(await response.text())[:200]}"
                )
            text = await response.text()
        try:
            return json.loads(text)
        except ValueError as exc:  # the real server's decoder first looks for apiVersion and kind
            raise InvalidReply(
                f"failed to call webhook: couldn't get version/kind; json parse error: {exc}"
            ) from exc

    async def _consult(
        self,
        hook: Mapping[str, Any],
        attrs: Attributes,
        obj: Mapping[str, Any] | None,
        old: Mapping[str, Any] | None,
        *,
        mutating: bool,
    ) -> dict[str, Any] | None:
        """The webhook's response (its patch decoded to a list of operations), None when the call or
        the reply failed and failurePolicy is Ignore."""
        name = hook.get("name", "")
        if attrs.dry_run and hook.get("sideEffects") not in ("None", "NoneOnDryRun"):
            raise ApiError(400, "BadRequest", f'admission webhook "{name}" does not support dry run')
        try:
            answer = await self._call(hook, self._review(attrs, obj, old), mutating)
            patch = _decode_patch(answer) if mutating else []
        except InvalidReply as exc:
            if (hook.get("failurePolicy") or "Fail") == "Ignore":
                return None
            raise internal(f'failed calling webhook "{name}": {exc}') from exc
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError, ssl.SSLError) as exc:
            if (hook.get("failurePolicy") or "Fail") == "Ignore":
                return None
            raise internal(
                f'failed calling webhook "{name}": failed to call webhook: {_describe(exc, hook)}'
            ) from exc
        attrs.warnings.extend(str(w) for w in answer.get("warnings") or ())
        if not answer.get("allowed"):
            raise _denied(name, answer.get("status") or {})
        return {**answer, "patch": patch}

    async def mutate(
        self, attrs: Attributes, obj: dict[str, Any] | None, old: Mapping[str, Any] | None
    ) -> dict[str, Any] | None:
        with _warned(attrs):
            for hook in self._hooks(MUTATING, attrs, obj, old):
                answer = await self._consult(hook, attrs, obj, old, mutating=True)
                if answer is None or not answer["patch"]:
                    continue
                name = hook.get("name")
                if obj is None:
                    raise internal(
                        f'admission webhook "{name}" attempted to modify the object, which is not '
                        "supported for this operation"
                    )
                if answer.get("patchType") != "JSONPatch":
                    if (hook.get("failurePolicy") or "Fail") == "Ignore":
                        continue
                    raise internal(
                        f'failed calling webhook "{name}": unsupported patch type "{answer.get("patchType")}"'
                    )
                try:
                    obj = json_patch(obj, answer["patch"])
                except ApiError as exc:  # not a failure to call: failurePolicy does not apply
                    raise internal(exc.message.removeprefix("json patch: ")) from exc
        return obj

    async def validate(
        self, attrs: Attributes, obj: Mapping[str, Any] | None, old: Mapping[str, Any] | None
    ) -> None:
        hooks = self._hooks(VALIDATING, attrs, obj, old)
        # validating webhooks run in parallel in the real server; any denial refuses the request
        with _warned(attrs):
            results = await asyncio.gather(
                *(self._consult(h, attrs, obj, old, mutating=False) for h in hooks), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result


class InvalidReply(Exception):
    """A webhook's reply that upstream's VerifyAdmissionResponse (or its decoder) refuses: a failure
    to call the webhook, so failurePolicy decides, reported as a 500 naming the webhook."""


REVIEW_V1 = ("admission.k8s.io/v1", "AdmissionReview")
B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def _go_type(value: Any) -> str:
    """The JSON type as Go's encoding/json names it in an UnmarshalTypeError."""
    names = {dict: "object", list: "array", str: "string", bool: "bool", int: "number", float: "number"}
    return names.get(type(value), "null")


def _gv(api_version: str) -> str:
    """schema.GroupVersion's rendering inside GroupVersionKind.String(): group/version."""
    group, _, version = api_version.rpartition("/")
    return f"{group}/{version}"


def _invalid(problem: str) -> InvalidReply:
    return InvalidReply(f"received invalid webhook response: {problem}")


def _verify(body: Any, uid: str, mutating: bool) -> dict[str, Any]:
    """The reply's `response`, checked as k8s.io/apiserver's request.VerifyAdmissionResponse does
    after decoding it into a v1 AdmissionReview (messages as upstream's, for the same reasons)."""
    if not isinstance(body, dict):
        raise InvalidReply(
            "failed to call webhook: couldn't get version/kind; json parse error: "
            f"json: cannot unmarshal {_go_type(body)} into Go value of type struct"
        )
    version, kind = str(body.get("apiVersion") or ""), str(body.get("kind") or "")
    if (version, kind) == ("admission.k8s.io/v1beta1", "AdmissionReview"):
        raise InvalidReply(
            "failed to call webhook: converting (v1beta1.AdmissionReview) to (v1.AdmissionReview): "
            "unknown conversion"
        )
    if (version or kind) and (version, kind) != REVIEW_V1:
        raise InvalidReply(
            f'failed to call webhook: no kind "{kind}" is registered for version "{version}" in scheme '
            '"pkg/runtime/scheme.go:111"'
        )
    answer = body.get("response")
    if not isinstance(answer, dict):
        raise _invalid("webhook response was absent")
    if str(answer.get("uid") or "") != uid:
        raise _invalid(f'expected response.uid="{uid}", got "{answer.get("uid") or ""}"')
    if (version, kind) != REVIEW_V1:
        raise _invalid(
            "expected webhook response of admission.k8s.io/v1, "
            f"Kind=AdmissionReview, got {_gv(version)}, Kind={kind}"
        )
    patch, patch_type = answer.get("patch"), answer.get("patchType")
    if mutating:
        if patch and patch_type is None:
            raise _invalid("webhook returned response.patch but not response.patchType")
        if not patch and patch_type is not None:
            raise _invalid("webhook returned response.patchType but not response.patch")
        if patch_type == "":
            raise _invalid('webhook returned invalid response.patchType of ""')
    elif patch:
        raise _invalid("validating webhook may not return response.patch")
    elif patch_type is not None:
        raise _invalid("validating webhook may not return response.patchType")
    return dict(answer)


def _decode_patch(answer: Mapping[str, Any]) -> list[Any]:
    """The patch's operations; any patchType is decoded as a JSON Patch first, as upstream does."""
    if not answer.get("patch"):
        return []
    text = str(answer["patch"])
    try:  # a []byte field in Go's JSON: standard base64, strictly
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        at = next((i for i, c in enumerate(text) if c not in B64_ALPHABET), len(text))
        raise InvalidReply(f"failed to call webhook: illegal base64 data at input byte {at}") from exc
    try:
        operations = json.loads(raw)
    except ValueError as exc:
        raise InvalidReply(f"received undecodable patch in webhook response: {exc}") from exc
    if operations is None:  # Go decodes null into an empty patch
        return []
    if not isinstance(operations, list):
        raise InvalidReply(
            "received undecodable patch in webhook response: json: cannot unmarshal "
            f"{_go_type(operations)} into Go value of type jsonpatch.Patch"
        )
    return operations


@contextlib.contextmanager
def _warned(attrs: Attributes) -> Iterator[None]:
    """A refusal still carries the warnings webhooks gave before it, as upstream's Warning headers."""
    try:
        yield
    except ApiError as exc:
        if attrs.warnings:
            exc.headers["Warning"] = ", ".join(f'299 - "{w}"' for w in attrs.warnings)
        raise


def _describe(exc: BaseException, hook: Mapping[str, Any]) -> str:
    """The failure in the style of Go's net/http errors that the real server reports."""
    config = hook.get("clientConfig") or {}
    service = config.get("service") or {}
    url = config.get("url") or (
        f"https://{service.get('name')}.{service.get('namespace')}.svc:{service.get('port', 443)}"
        f"{service.get('path') or ''}"
    )
    if isinstance(exc, TimeoutError):
        return f'Post "{url}": context deadline exceeded'
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f'Post "{url}": tls: failed to verify certificate: {exc.certificate_error}'
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or str(exc.os_error)
        return f'Post "{url}": dial tcp {exc.host}:{exc.port}: connect: {reason.lower()}'
    return f'Post "{url}": {exc}'


class _Refusal(ApiError):
    """A webhook's refusal: its status as given, so an empty reason stays absent as upstream's is."""

    def status(self) -> dict[str, Any]:
        body = super().status()
        if not body["reason"]:
            del body["reason"]
        return body


def _denied(name: str, status: Mapping[str, Any]) -> ApiError:
    """upstream's webhookerrors.ToStatusErr: the webhook's code (400 when below 400), reason and
    details, the message prefixed with the webhook's name."""
    code = int(status.get("code") or 0)
    if code < 400:
        code = 400
    prefix = f'admission webhook "{name}" denied the request'
    if status.get("message"):
        message = f"{prefix}: {status['message']}"
    elif status.get("reason"):
        message = f"{prefix}: {status['reason']}"
    else:
        message = f"{prefix} without explanation"
    return _Refusal(code, str(status.get("reason") or ""), message, status.get("details"))
