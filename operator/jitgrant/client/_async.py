"""AsyncClient: the agent's side of jitgrant as library calls (the CLI and the MCP server use it too).

`wait` follows one request with a watch from the resourceVersion it last saw, and resumes from there
when the connection drops or the server ends it, so the agent sees an approval as soon as the
operator records it, with a handful of API calls per wait instead of a GET every half second.

Every method that names a request checks that the caller is its requester (or, for a request proven
by OIDC, the identity that filed it): the client never shows, waits on or releases another agent's
request, even where RBAC would let it read one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from jitgrant.activity.base import AuditSource, SourceError
from jitgrant.activity.grant import NoGrant, identity_of
from jitgrant.activity.report import Activity, read
from jitgrant.client._api import Connection, secret_path
from jitgrant.client.errors import (
    AccessDenied,
    AccessEnded,
    AccessFailed,
    AccessTimedOut,
    ActivityUnavailable,
    ApiRefused,
    ApiUnreachable,
    InvalidRequest,
    JitgrantError,
    NotYourRequest,
    RequestNotFound,
)
from jitgrant.client.paths import policy_path, request_path
from jitgrant.client.results import (
    CheckResult,
    Grant,
    Grantable,
    Identity,
    PolicyReadiness,
    Progress,
)
from jitgrant.grants.delivery import KUBECONFIG_KEY
from jitgrant.models import (
    API_GROUP,
    API_VERSION,
    AccessRequest,
    GrantPolicySpec,
    Phase,
    PolicyRule,
    RequesterStamp,
    parse_duration,
)
from jitgrant.models.dryrun import decode_refusal, decode_warnings
from jitgrant.models.vocabulary import (
    CREATED_BY_EXTRA,
    OIDC_TOKEN_ANNOTATION,
    RELEASE_ANNOTATION,
    Reason,
)
from jitgrant.policy.requesters import requester_matches

ProgressCallback = Callable[[Progress], Awaitable[None] | None]

# Until RBAC caches catch up (real clusters), a Secret just made readable may still answer 403.
SECRET_READ_GRACE_SECONDS = 10.0
RELEASE_CONFIRM_SECONDS = 30.0
# A watch that ends sooner than this without an event counts as a failure to reconnect after.
_QUICK_END_SECONDS = 1.0
_RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
_ENDINGS: dict[Phase, tuple[type[JitgrantError], str]] = {
    Phase.DENIED: (AccessDenied, "denied"),
    Phase.TIMED_OUT: (AccessTimedOut, "timed out"),
    Phase.FAILED: (AccessFailed, "failed"),
    Phase.EXPIRED: (AccessEnded, "expired before it could be used"),
    Phase.REVOKED: (AccessEnded, "revoked before it could be used"),
    # An extension never becomes Active itself: its time went to the grant it extends.
    Phase.APPLIED: (AccessEnded, "an extension, applied to the grant it extends (wait on that grant)"),
}
DurationLike = str | timedelta | float
#: The keyword arguments `manifest` takes (`reason`: the deprecated spelling of `justification`).
MANIFEST_ARGUMENTS = frozenset(
    {"policy", "namespace", "justification", "cluster_role", "rules", "duration", "name"}
    | {"request_namespace", "oidc_token", "reason", "request_key"}
)


def _seconds(value: DurationLike) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    try:
        if isinstance(value, str):
            return parse_duration(value).total_seconds()
    except ValueError:
        pass
    raise InvalidRequest(
        field="timeout",
        given=value,
        accepted="how long to wait: seconds as a number (0 or more), a duration such as '90s' or '30m', "
        "or a timedelta",
        example="'5m'",
    )


_DURATION_ACCEPTED = (
    "a duration as text, hours/minutes/seconds such as '90s', '10m' or '1h30m' (longer than zero, at "
    "most a year), or a timedelta"
)


def _duration_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, timedelta):
        # 600 or 10.0: seconds or minutes? Refused rather than guessed.
        raise InvalidRequest(field="duration", given=value, accepted=_DURATION_ACCEPTED, example="'10m'")
    seconds = int(value.total_seconds())
    return f"{seconds // 3600}h{seconds % 3600 // 60}m{seconds % 60}s"


def _rule(rule: object) -> dict[str, Any]:
    """One inline rule as the CRD stores it; InvalidRequest names what is wrong with it."""
    if isinstance(rule, PolicyRule):
        return rule.to_k8s()
    try:
        return PolicyRule.model_validate(rule).to_k8s()
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "rule"
        raise InvalidRequest(
            field=f"rules[].{where}",
            given=problem.get("input", rule),
            accepted=f"a rule with apiGroups, resources and verbs, each a list of strings ({problem['msg']})",
            example="{'apiGroups': ['apps'], 'resources': ['deployments'], 'verbs': ['get', 'patch']}",
        ) from exc


def withdrawn_on_exit(exc: AccessTimedOut) -> AccessTimedOut:
    """grant()'s own wait bound passed: unlike wait(), grant() withdraws the request on the way out,
    so the message says so instead of "stays filed"."""
    if exc.reason != Reason.WAIT_TIMEOUT:
        return exc
    request = exc.request
    where = (
        f"AccessRequest {request.metadata.namespace}/{request.metadata.name}" if request else "the request"
    )
    phase = request.status.phase.value if request and request.status.phase else "undecided"
    head = exc.message.split(";")[0]
    return AccessTimedOut(
        f"{head}; {where} was still {phase}, and grant() withdrew it on the way out (released): "
        "to wait longer pass a larger timeout=, or file with request() and wait() to keep it filed",
        reason=Reason.WAIT_TIMEOUT,
        request=request,
    )


def ending_error(request: AccessRequest) -> JitgrantError | None:
    """The error a terminal phase means to someone waiting for access; None while it may still come."""
    phase = request.status.phase
    if phase is None or phase not in _ENDINGS:
        return None
    kind, what = _ENDINGS[phase]
    return kind(request.status.message or what, reason=request.status.reason or phase.value, request=request)


class AsyncClient:
    """Async client for one identity; create with `from_kubeconfig`, `in_cluster` or `with_token`."""

    def __init__(self, connection: Connection) -> None:
        self._api = connection
        self._me: Identity | None = None
        self._filed: set[tuple[str, str]] = set()

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_kubeconfig(
        cls, path: str | Path | None = None, *, context: str | None = None, namespace: str | None = None
    ) -> AsyncClient:
        return cls(Connection.from_kubeconfig(path, context=context, namespace=namespace))

    @classmethod
    def in_cluster(cls, *, namespace: str | None = None) -> AsyncClient:
        return cls(Connection.in_cluster(namespace=namespace))

    @classmethod
    def from_configuration(cls, configuration: Any, *, namespace: str = "default") -> AsyncClient:
        return cls(Connection.from_configuration(configuration, namespace=namespace))

    def with_token(self, token: str, *, namespace: str | None = None) -> AsyncClient:
        """A client for the same API server acting only as the holder of `token`."""
        return AsyncClient(self._api.with_token(token, namespace=namespace))

    @property
    def namespace(self) -> str:
        """Where requests are filed unless a call names another namespace."""
        return self._api.namespace

    @namespace.setter
    def namespace(self, value: str) -> None:
        self._api.namespace = value

    @property
    def api_calls(self) -> int:
        """How many API requests (calls and watch connections) this client has made."""
        return self._api.calls

    async def close(self) -> None:
        await self._api.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- identity -----------------------------------------------------------------------------
    async def whoami(self) -> Identity:
        """The caller as the API server authenticates it (a SelfSubjectReview), asked once."""
        if self._me is None:
            answer = await self._api.call(
                "POST",
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            )
            info = (answer.body.get("status") or {}).get("userInfo") or {}
            self._me = Identity(
                username=str(info.get("username") or ""),
                uid=str(info.get("uid") or ""),
                groups=tuple(info.get("groups") or ()),
            )
        return self._me

    async def _mine(self, request: AccessRequest) -> bool:
        namespace = request.metadata.namespace or ""
        if (namespace, request.metadata.name) in self._filed:
            return True
        stamp = request.spec.requester
        if stamp is None:
            return False
        me = (await self.whoami()).username
        filed_by = stamp.extra.get(CREATED_BY_EXTRA, ())
        return bool(me) and (stamp.username == me or me in filed_by)

    # -- requests -----------------------------------------------------------------------------
    def manifest(
        self,
        *,
        policy: str,
        namespace: str,
        justification: str | None = None,
        cluster_role: str | None = None,
        rules: Sequence[PolicyRule | Mapping[str, Any]] | None = None,
        duration: str | timedelta | None = None,
        name: str | None = None,
        request_namespace: str | None = None,
        oidc_token: str | None = None,
        reason: str | None = None,
        request_key: str | None = None,
    ) -> dict[str, Any]:
        """The AccessRequest these arguments describe; InvalidRequest names a bad argument.

        `justification` is the CRD's spec.justification; `reason` is its deprecated spelling (until
        0.2), kept because 0.1 shipped it. `request_key` (spec.requestKey) makes filing idempotent:
        while a request filed with the same key is open, filing again returns that request. By
        default it is derived from the arguments, so the same call repeated (a timed-out tool call,
        a looping plan) is the same request."""
        if reason is not None:
            warnings.warn(
                "jitgrant.client: reason= is deprecated, use justification= (the CRD's field)",
                DeprecationWarning,
                stacklevel=3,
            )
            justification = reason if justification is None else justification
        for field, value, example in (
            ("policy", policy, "'oncall-restart'"),
            ("namespace", namespace, "'payments'"),
            ("justification", justification, "'INC-4711 checkout pods stuck'"),
        ):
            if not isinstance(value, str) or not value.strip():
                raise InvalidRequest(field=field, given=value, accepted="a non-empty string", example=example)
        assert justification is not None  # checked just above
        if (cluster_role is None) == (not rules):
            raise InvalidRequest(
                field="cluster_role/rules",
                given={"cluster_role": cluster_role, "rules": rules},
                accepted="exactly one of cluster_role (a ClusterRole the policy offers) or rules",
                example="cluster_role='jit-restart-checkout'",
            )
        if cluster_role is not None and not isinstance(cluster_role, str):
            raise InvalidRequest(
                field="cluster_role", given=cluster_role, accepted="a string", example="'jit-restart'"
            )
        spec: dict[str, Any] = {"policy": policy, "namespace": namespace, "justification": justification}
        if cluster_role is not None:
            spec["clusterRole"] = cluster_role
        else:
            spec["rules"] = [_rule(rule) for rule in rules or ()]
        text = _duration_text(duration)
        if text is not None:
            try:
                parse_duration(text)
            except ValueError as exc:
                raise InvalidRequest(
                    field="duration", given=duration, accepted=_DURATION_ACCEPTED, example="'10m'"
                ) from exc
            spec["duration"] = text
        spec["requestKey"] = request_key or _derived_key(spec)
        metadata: dict[str, Any] = {"namespace": request_namespace or self.namespace}
        if name:
            metadata["name"] = name
        else:
            metadata["generateName"] = f"{policy[:50].rstrip('-.')}-"
        if oidc_token is not None:
            # The webhook verifies it, stamps the requester from it and strips it before storing.
            metadata["annotations"] = {OIDC_TOKEN_ANNOTATION: oidc_token}
        return {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "AccessRequest",
            "metadata": metadata,
            "spec": spec,
        }

    async def file(self, manifest: Mapping[str, Any]) -> AccessRequest:
        """Create an AccessRequest from a manifest (see `manifest`)."""
        namespace = str(manifest["metadata"]["namespace"])
        try:
            answer = await self._api.call("POST", request_path(namespace), body=manifest)
        except ApiRefused as exc:
            existing = await self._existing(exc, manifest)
            if existing is None:
                raise
            return existing
        request = AccessRequest.from_object(answer.body)
        self._filed.add((namespace, request.metadata.name))
        return request

    def _manifest(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(kwargs) - MANIFEST_ARGUMENTS)
        if unknown:
            raise InvalidRequest(
                field=unknown[0],
                given=kwargs[unknown[0]],
                accepted=f"only the arguments {', '.join(sorted(MANIFEST_ARGUMENTS - {'reason'}))}",
                example="policy='oncall-restart', namespace='payments', cluster_role='jit-restart-checkout', "
                "justification='INC-4711', duration='10m'",
            )
        return self.manifest(**kwargs)

    async def _existing(self, exc: ApiRefused, manifest: Mapping[str, Any]) -> AccessRequest | None:
        """The webhook's AlreadyRequested refusal (409, and not the API server's AlreadyExists): the
        open request filed with this manifest's requestKey, found by its spec.requestKey (a retry
        gets it back); otherwise raises the refusal with that reason."""
        if exc.status != 409 or exc.status_reason == "AlreadyExists":
            return None
        key = (manifest.get("spec") or {}).get("requestKey")
        namespace = str(manifest["metadata"]["namespace"])
        with contextlib.suppress(JitgrantError):
            listed = (await self._api.call("GET", request_path(namespace))).body.get("items") or ()
            for item in listed:
                with contextlib.suppress(ValidationError):
                    request = AccessRequest.from_object(item)
                    phase = request.status.phase
                    if not key or request.spec.request_key != key or (phase is not None and phase.terminal):
                        continue
                    if await self._mine(request):
                        self._filed.add((namespace, request.metadata.name))
                        return request
        raise ApiRefused(exc.message, status=exc.status, reason=Reason.ALREADY_REQUESTED) from exc

    async def request(self, **kwargs: Any) -> AccessRequest:
        """File an AccessRequest; the arguments are those of `manifest`. Returns it as stored."""
        return await self.file(self._manifest(kwargs))

    async def check(self, **kwargs: Any) -> CheckResult:
        """Would this request be allowed, wait for approval, or be denied, and exactly why? Asked of
        the operator's own decision code through a dryRun create: nothing is stored or audited."""
        kwargs.pop("name", None)
        return await self._dry_run(self._manifest(kwargs))

    async def _dry_run(self, manifest: dict[str, Any]) -> CheckResult:
        namespace = str(manifest["metadata"]["namespace"])
        try:
            answer = await self._api.call(
                "POST", request_path(namespace), body=manifest, params={"dryRun": "All"}
            )
        except ApiRefused as exc:
            denied = decode_refusal(exc.message)
            if denied is None:
                raise
            return CheckResult(outcome="denied", reason=denied.reason, message=denied.message)
        found = decode_warnings(answer.warnings)
        if found is not None:
            not_ready = await self._not_ready(str(manifest["spec"]["policy"]))
            if not_ready is not None:
                return not_ready
            return CheckResult(
                outcome=found.outcome,
                reason=found.reason,
                message=found.message,
                duration=found.duration,
                approvals_needed=found.approvals_needed,
                approvers=found.approvers,
            )
        raise JitgrantError(
            "the operator did not answer the dry run (its webhook predates dry-run support: upgrade it)",
            reason=Reason.API_REFUSED,
        )

    async def _not_ready(self, policy: str) -> CheckResult | None:
        """The answer when the policy's Ready condition is False: the webhook's dry run decides on the
        spec alone, but a request filed under a policy that is not Ready ends Failed. A caller who
        may not read the policy gets the webhook's answer unchanged."""
        try:
            answer = await self._api.call("GET", policy_path(policy))
        except ApiRefused:
            return None
        readiness = PolicyReadiness.of(answer.body)
        if readiness.ready is not False:
            return None
        return CheckResult(
            outcome="denied",
            reason=Reason.POLICY_NOT_READY,
            message=f"policy {policy} is not Ready ({readiness.message or 'no message'}): a request "
            "under it would end Failed; ask the platform team to fix the policy, or use another "
            "(list_grantable / jitgrant policies show which are Ready)",
        )

    async def _get(self, namespace: str, name: str) -> tuple[AccessRequest, str]:
        try:
            answer = await self._api.call("GET", request_path(namespace, name))
        except ApiRefused as exc:
            if exc.status == 404:
                raise RequestNotFound(
                    f"AccessRequest {namespace}/{name} does not exist (list yours with my_requests)",
                    reason=Reason.REQUEST_NOT_FOUND,
                ) from exc
            raise
        return AccessRequest.from_object(answer.body), str(answer.body["metadata"].get("resourceVersion", ""))

    async def _get_own(self, namespace: str, name: str) -> tuple[AccessRequest, str]:
        request, version = await self._get(namespace, name)
        if not await self._mine(request):
            # Said the same way as a missing one would be, apart from the reason: nothing of the
            # other request (requester, scope, phase) is shown.
            raise NotYourRequest(
                f"AccessRequest {namespace}/{name} was filed by another identity; you can only see, wait "
                "on and release your own requests",
                reason=Reason.NOT_REQUESTER,
            )
        return request, version

    async def status(self, name: str, *, namespace: str | None = None) -> AccessRequest:
        """One of your requests as the operator last wrote it."""
        request, _ = await self._get_own(namespace or self.namespace, name)
        return request

    async def my_requests(self, *, namespace: str | None = None) -> list[AccessRequest]:
        """Your requests in a namespace (default: the client's), newest first."""
        namespace = namespace or self.namespace
        answer = await self._api.call("GET", request_path(namespace))
        mine: list[AccessRequest] = []
        for item in answer.body.get("items") or ():
            try:
                request = AccessRequest.from_object(item)
            except ValidationError:
                continue
            if await self._mine(request):
                mine.append(request)
        never = datetime.min.replace(tzinfo=UTC)
        mine.sort(key=lambda r: r.status.requested_at or never, reverse=True)
        return mine

    async def grantable(self) -> list[Grantable]:
        """The GrantPolicies you are a requester of, with what each lets you ask for. Matched by the
        operator's own requester code against your Kubernetes identity."""
        me = await self.whoami()
        stamp = RequesterStamp(username=me.username, uid=me.uid, groups=me.groups)
        try:
            answer = await self._api.call("GET", policy_path())
        except ApiRefused as exc:
            if exc.status == 403:
                raise ApiRefused(
                    f"{exc.message}; listing what you may request needs read access to GrantPolicies "
                    "(the chart's jitgrant-policy-reader ClusterRole, bound with a ClusterRoleBinding)",
                    status=403,
                ) from exc
            raise
        found: list[Grantable] = []
        for item in answer.body.get("items") or ():
            try:
                spec = GrantPolicySpec.model_validate(item.get("spec") or {})
            except ValidationError:
                continue
            if requester_matches(spec.requesters, stamp):
                found.append(Grantable.of(str(item["metadata"]["name"]), spec, PolicyReadiness.of(item)))
        return sorted(found, key=lambda g: g.policy)

    # -- waiting ------------------------------------------------------------------------------
    async def wait(
        self,
        name: str,
        *,
        namespace: str | None = None,
        timeout: DurationLike = "30m",  # noqa: ASYNC109 - the wait bound is part of the API
        on_progress: ProgressCallback | None = None,
        deliver: bool = True,
    ) -> Grant:
        """Follow your request until its grant is active and return it (with the kubeconfig when one
        was delivered); raise AccessDenied, AccessTimedOut, AccessFailed or AccessEnded otherwise.
        On timeout the request stays filed (reason WaitTimeout)."""
        namespace = namespace or self.namespace
        seconds = _seconds(timeout)
        follower = _Follower(self, namespace=namespace, name=name, on_progress=on_progress)
        try:
            async with asyncio.timeout(seconds):
                request = await follower.until_active()
        except TimeoutError:
            phase = follower.last.status.phase if follower.last else None
            raise AccessTimedOut(
                f"gave up waiting after {seconds:.0f}s; AccessRequest {namespace}/{name} is still "
                f"{phase.value if phase else 'undecided'} and stays filed: wait again, or release it",
                reason=Reason.WAIT_TIMEOUT,
                request=follower.last,
            ) from None
        kubeconfig = await self.kubeconfig(request) if deliver else None
        grant = Grant(request=request, kubeconfig=kubeconfig)
        grant._extender = self.extend
        return grant

    async def _watch(
        self, namespace: str, name: str, version: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(type, object) events for one request from `version` on, resuming after drops; a 410 Gone
        (history compacted) re-reads the object and resumes from its current version."""
        failures = 0
        loop = asyncio.get_running_loop()
        while True:
            started, delivered = loop.time(), False
            try:
                async for event in self._api.watch(
                    request_path(namespace),
                    {"fieldSelector": f"metadata.name={name}", "resourceVersion": version},
                ):
                    failures, delivered = 0, True
                    kind, obj = str(event.get("type")), event.get("object") or {}
                    if kind == "ERROR":
                        if int(obj.get("code") or 0) == 410:
                            version, body = await self._relist(namespace, name)
                            yield ("MODIFIED", body) if body is not None else ("DELETED", {})
                            break
                        raise ApiRefused(str(obj.get("message") or obj), status=int(obj.get("code") or 500))
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if kind != "BOOKMARK":
                        yield kind, obj
            except ApiUnreachable:
                delay = _RECONNECT_DELAYS[min(failures, len(_RECONNECT_DELAYS) - 1)]
                failures += 1
                await asyncio.sleep(delay)
            except ApiRefused as exc:
                if exc.status != 410:
                    raise
                version, body = await self._relist(namespace, name)
                yield ("MODIFIED", body) if body is not None else ("DELETED", {})
                continue
            if not delivered and loop.time() - started < _QUICK_END_SECONDS:
                # A watch the server ended at once, with nothing in it (a server shutting down, a
                # proxy cutting it): back off as after a drop, instead of reconnecting in a loop.
                delay = _RECONNECT_DELAYS[min(failures, len(_RECONNECT_DELAYS) - 1)]
                failures += 1
                await asyncio.sleep(delay)

    async def _relist(self, namespace: str, name: str) -> tuple[str, dict[str, Any] | None]:
        """After 410 Gone: the request now, and the version to watch from. That is the LIST's
        resourceVersion, not the object's: an object unchanged since before the compaction keeps
        its old version, and watching from it would be 410 again, in a loop."""
        answer = await self._api.call(
            "GET", request_path(namespace), params={"fieldSelector": f"metadata.name={name}"}
        )
        items = answer.body.get("items") or []
        return str(answer.body["metadata"]["resourceVersion"]), (items[0] if items else None)

    async def _approvals_needed(self, request: AccessRequest) -> int | None:
        """status.approvalsRequired (the operator writes it with Pending), else the policy's
        minApprovals if the caller may read it (an operator that predates the field)."""
        if request.status.approvals_required is not None:
            return request.status.approvals_required
        try:
            body = (await self._api.call("GET", policy_path(request.spec.policy))).body
        except ApiRefused:
            return None
        return int(((body.get("spec") or {}).get("approval") or {}).get("minApprovals", 1))

    async def kubeconfig(self, request: AccessRequest) -> str | None:
        """The kubeconfig of a delivered grant (None when the grant binds your own identity).

        Read from the namespace the grant record names for its Secret (the operator's grants
        namespace); a grant recorded before records named it lived in the request's namespace."""
        grant = request.status.grant
        if grant is None or not grant.kubeconfig_secret:
            return None
        namespace = next(
            (
                ref.namespace
                for ref in grant.objects
                if ref.kind == "Secret" and ref.name == grant.kubeconfig_secret
            ),
            request.metadata.namespace or self.namespace,
        )
        deadline = asyncio.get_running_loop().time() + SECRET_READ_GRACE_SECONDS
        while True:
            try:
                body = (await self._api.call("GET", secret_path(namespace, grant.kubeconfig_secret))).body
                break
            except ApiRefused as exc:
                if exc.status not in (403, 404) or asyncio.get_running_loop().time() > deadline:
                    raise ApiRefused(
                        f"the grant is active but its kubeconfig Secret {namespace}/"
                        f"{grant.kubeconfig_secret} could not be read: {exc.message}",
                        status=exc.status,
                    ) from exc
                await asyncio.sleep(0.5)
        encoded = (body.get("data") or {}).get(KUBECONFIG_KEY)
        if not encoded:
            raise JitgrantError(
                f"Secret {namespace}/{grant.kubeconfig_secret} has no {KUBECONFIG_KEY!r} key",
                reason=Reason.API_REFUSED,
            )
        return base64.b64decode(encoded).decode()

    # -- what the grant was used for ----------------------------------------------------------
    async def activity(self, name: str, *, source: AuditSource, namespace: str | None = None) -> Activity:
        """What your grant was used for, from the API server's own audit log (`source`: the same
        `AuditLogFiles` or `CloudWatchAuditLogs` as `jitgrant activity`): every call its RoleBinding
        allowed, and every call by its identity during its window that was refused or allowed by
        something else, in time order, each saying how it was tied to the grant. Only your own
        requests, as for `status`; the log is read with the caller's access to `source`."""
        request, _ = await self._get_own(namespace or self.namespace, name)
        try:
            grant = identity_of(request)
        except NoGrant as exc:
            raise ActivityUnavailable(str(exc), reason=Reason.NO_GRANT, request=request) from exc
        try:
            # File reads and boto3 calls block: off the event loop.
            calls = await asyncio.to_thread(read, source, grant)
        except SourceError as exc:
            raise ActivityUnavailable(str(exc), reason=Reason.ACTIVITY_UNAVAILABLE, request=request) from exc
        return Activity.of(request, grant, source.name, calls)

    # -- ending -------------------------------------------------------------------------------
    async def release(
        self, name: str, *, namespace: str | None = None, reason: str = "", confirm: bool = True
    ) -> AccessRequest:
        """End your own grant now (or withdraw a pending request). Recorded as reason Released, by
        you. With `confirm`, returns once the operator has removed the access. Releasing a request
        that has already ended changes nothing and returns it."""
        namespace = namespace or self.namespace
        request, version = await self._get_own(namespace, name)
        if request.status.phase is not None and request.status.phase.terminal:
            return request
        if RELEASE_ANNOTATION not in request.metadata.annotations:
            patched = await self._api.call(
                "PATCH",
                request_path(namespace, name),
                body={"metadata": {"annotations": {RELEASE_ANNOTATION: reason or "task done"}}},
                content_type="application/merge-patch+json",
            )
            request = AccessRequest.from_object(patched.body)
            version = str(patched.body["metadata"]["resourceVersion"])
        if not confirm:
            return request
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RELEASE_CONFIRM_SECONDS):
                async for kind, obj in self._watch(namespace, name, version):
                    if kind == "DELETED":
                        return request
                    request = AccessRequest.from_object(obj)
                    if request.status.phase is not None and request.status.phase.terminal:
                        return request
        return request

    # -- extending ----------------------------------------------------------------------------
    async def extension_manifest(
        self,
        name: str,
        *,
        by: str | timedelta,
        justification: str,
        namespace: str | None = None,
        request_key: str | None = None,
    ) -> dict[str, Any]:
        """The extension of your Active grant `name` (spec.extends): the same scope as the grant,
        `by` as its duration. The operator refuses any other scope; copying it here means a caller
        never has to restate it."""
        namespace = namespace or self.namespace
        original, _ = await self._get_own(namespace, name)
        spec = original.spec
        manifest = self.manifest(
            policy=spec.policy,
            namespace=spec.namespace,
            justification=justification,
            cluster_role=spec.cluster_role,
            rules=spec.rules,
            duration=by,
            request_namespace=namespace,
        )
        manifest["spec"]["extends"] = name
        manifest["spec"].pop("requestKey", None)
        manifest["spec"]["requestKey"] = request_key or _derived_key(manifest["spec"])
        manifest["metadata"].pop("generateName", None)
        manifest["metadata"]["generateName"] = f"{name[:50].rstrip('-.')}-ext-"
        return manifest

    async def extend(
        self,
        name: str,
        *,
        by: str | timedelta,
        justification: str,
        namespace: str | None = None,
        request_key: str | None = None,
        timeout: DurationLike = "30m",  # noqa: ASYNC109 - the wait bound is part of the API
        wait: bool = True,
    ) -> AccessRequest:
        """Ask to extend your Active grant `name` by `by` (e.g. "10m"), under its policy's
        spec.extensions. With `wait` (the default), follow the extension until it is applied and
        return the grant with its new `expiresAt`; AccessDenied (reason ExtensionRefused, or
        DeniedByApprover) when it is not, the grant unchanged. Without, return the extension as filed."""
        namespace = namespace or self.namespace
        seconds = _seconds(timeout)
        manifest = await self.extension_manifest(
            name, by=by, justification=justification, namespace=namespace, request_key=request_key
        )
        try:
            extension = await self.file(manifest)
        except ApiRefused as exc:
            # The webhook's refusal starts with its reason token (operator/admission.py).
            if f"{Reason.EXTENSION_REFUSED}: " in exc.message:
                raise AccessDenied(exc.message, reason=Reason.EXTENSION_REFUSED) from exc
            raise
        if not wait:
            return extension
        try:
            async with asyncio.timeout(seconds):
                extension = await self._until_ended(namespace, extension.metadata.name)
        except TimeoutError:
            raise AccessTimedOut(
                f"gave up waiting after {seconds:.0f}s; extension {namespace}/{extension.metadata.name} "
                "is still undecided and stays filed",
                reason=Reason.WAIT_TIMEOUT,
                request=extension,
            ) from None
        if extension.status.phase is not Phase.APPLIED:
            error = ending_error(extension)
            raise error or AccessEnded(
                f"extension {namespace}/{extension.metadata.name} ended {extension.status.phase}",
                reason=extension.status.reason or "",
                request=extension,
            )
        return (await self._get_own(namespace, name))[0]

    async def check_extension(
        self, name: str, *, by: str | timedelta, justification: str, namespace: str | None = None
    ) -> CheckResult:
        """Would this extension be applied at once, wait for approvers, or be refused, and why? A
        dryRun create: nothing is stored or audited."""
        manifest = await self.extension_manifest(
            name, by=by, justification=justification, namespace=namespace
        )
        return await self._dry_run(manifest)

    async def _until_ended(self, namespace: str, name: str) -> AccessRequest:
        request, version = await self._get_own(namespace, name)
        if request.status.phase is not None and request.status.phase.terminal:
            return request
        async for kind, obj in self._watch(namespace, name, version):
            if kind == "DELETED":
                raise AccessEnded(
                    f"extension {namespace}/{name} was deleted before it was decided",
                    reason=Reason.DELETED,
                    request=request,
                )
            request = AccessRequest.from_object(obj)
            if request.status.phase is not None and request.status.phase.terminal:
                return request
        raise AssertionError("unreachable: the watch resumes until cancelled")  # pragma: no cover

    @contextlib.asynccontextmanager
    async def grant(
        self,
        *,
        timeout: DurationLike = "30m",  # noqa: ASYNC109 - the wait bound is part of the API
        on_progress: ProgressCallback | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[Grant]:
        """File, wait until active, yield the grant, release it on the way out (also on errors)."""
        _seconds(timeout)  # a bad timeout is refused before anything is filed
        request = await self.request(**kwargs)
        name, namespace = request.metadata.name, request.metadata.namespace or self.namespace
        try:
            try:
                granted = await self.wait(name, namespace=namespace, timeout=timeout, on_progress=on_progress)
            except AccessTimedOut as exc:
                raise withdrawn_on_exit(exc) from None
            yield granted
        finally:
            await asyncio.shield(self.release(name, namespace=namespace, reason="released on exit"))


class _Follower:
    """One wait: reads the request once, then follows it with a watch, reporting changes."""

    def __init__(
        self, client: AsyncClient, *, namespace: str, name: str, on_progress: ProgressCallback | None
    ) -> None:
        self.client, self.namespace, self.name = client, namespace, name
        self.on_progress = on_progress
        self.last: AccessRequest | None = None
        self._shown: Progress | None = None
        self._needed: int | None = None
        self._asked_policy = False

    async def until_active(self) -> AccessRequest:
        request, version = await self.client._get_own(self.namespace, self.name)
        result = await self._see(request)
        if result is not None:
            return result
        async for kind, obj in self.client._watch(self.namespace, self.name, version):
            if kind == "DELETED":
                raise AccessEnded(
                    f"AccessRequest {self.namespace}/{self.name} was deleted before it could be used",
                    reason=Reason.DELETED,
                    request=self.last,
                )
            result = await self._see(AccessRequest.from_object(obj))
            if result is not None:
                return result
        raise AssertionError("unreachable: the watch resumes until cancelled")  # pragma: no cover

    async def _see(self, request: AccessRequest) -> AccessRequest | None:
        self.last = request
        status = request.status
        if status.phase is Phase.PENDING and not self._asked_policy:
            self._asked_policy = True
            self._needed = await self.client._approvals_needed(request)
        approvers = tuple(sorted({entry.approver for entry in status.approvals}))
        progress = Progress(
            phase=status.phase.value if status.phase else None,
            reason=status.reason,
            message=status.message or "",
            approvals=len(approvers),
            approvals_needed=self._needed,
            approved_by=approvers,
            expires_at=status.expires_at,
        )
        if self._changed(progress) and self.on_progress is not None:
            outcome = self.on_progress(progress)
            if outcome is not None:
                await outcome
        if status.phase is Phase.ACTIVE:
            return request
        error = ending_error(request)
        if error is not None:
            raise error
        return None

    def _changed(self, progress: Progress) -> bool:
        """A change worth telling: the phase, the approvals, the reason (not every message edit)."""
        before = self._shown
        key = (progress.phase, progress.approvals, progress.reason if progress.phase != "Pending" else None)
        if before is not None and key == (
            before.phase,
            before.approvals,
            before.reason if before.phase != "Pending" else None,
        ):
            return False
        self._shown = progress
        return True


def _derived_key(spec: Mapping[str, Any]) -> str:
    """The default requestKey: a digest of what is asked (policy, scope, duration, justification)."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return "auto-" + hashlib.sha256(text.encode()).hexdigest()[:40]
