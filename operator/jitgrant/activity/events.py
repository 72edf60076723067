"""The Kubernetes API server's own record of a call: `audit.k8s.io/v1` Events, parsed.

Pure: no I/O, no Kubernetes client, no cloud SDK. The same bytes come from a kube-apiserver
`--audit-log-path` file, from CloudWatch Logs on EKS, or from the embedded test server, and are
read the same way.

Only an Event's last stage is kept (`ResponseComplete`, or `Panic`): the earlier stages of the same
call (`RequestReceived`, `ResponseStarted`) repeat it with the outcome still unknown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: The annotations the API server's authorization filter adds to every Event (upstream
#: staging/src/k8s.io/apiserver/pkg/endpoints/filters/authorization.go).
DECISION_ANNOTATION = "authorization.k8s.io/decision"
REASON_ANNOTATION = "authorization.k8s.io/reason"

#: Stages that close a call; the others carry no response code.
FINAL_STAGES = frozenset({"ResponseComplete", "Panic"})

#: The RBAC authorizer's reason for an allowed call (upstream plugin/pkg/auth/authorizer/rbac and
#: pkg/registry/rbac/validation/rule.go): `RBAC: allowed by RoleBinding "<name>/<namespace>" of
#: ClusterRole "<role>" to ServiceAccount "<sa>/<sa namespace>"`, or `ClusterRoleBinding "<name>"`.
_RBAC_REASON = re.compile(
    r'^RBAC: allowed by (?P<kind>RoleBinding|ClusterRoleBinding) "(?P<binding>[^"]*)" '
    r'of (?P<role_kind>Role|ClusterRole) "(?P<role>[^"]*)" to (?P<subject_kind>\w+) "(?P<subject>[^"]*)"$'
)


@dataclass(frozen=True)
class AllowedBy:
    """What the RBAC authorizer says allowed a call."""

    kind: str  # RoleBinding or ClusterRoleBinding
    name: str
    namespace: str | None  # None for a ClusterRoleBinding
    role_kind: str
    role: str
    subject_kind: str
    subject: str

    def describe(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where} ({self.role_kind} {self.role})"


def parse_reason(reason: str) -> AllowedBy | None:
    """The binding named by an RBAC `authorization.k8s.io/reason`, or None for any other text."""
    match = _RBAC_REASON.match(reason.strip())
    if match is None:
        return None
    name, namespace = match["binding"], None
    if match["kind"] == "RoleBinding":
        # Upstream writes name+"/"+namespace; names cannot hold "/", so the last one splits them.
        name, _, namespace = match["binding"].rpartition("/")
    return AllowedBy(
        kind=match["kind"],
        name=name,
        namespace=namespace,
        role_kind=match["role_kind"],
        role=match["role"],
        subject_kind=match["subject_kind"],
        subject=match["subject"],
    )


@dataclass(frozen=True)
class ApiCall:
    """One API request as the API server recorded it."""

    audit_id: str
    time: datetime  # requestReceivedTimestamp
    verb: str
    username: str
    groups: tuple[str, ...]
    user_extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    user_agent: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    request_uri: str = ""
    code: int | None = None
    decision: str = ""  # "allow", "forbid" or "" when the Event has no annotation
    reason: str = ""
    source_ips: tuple[str, ...] = ()

    @property
    def allowed_by(self) -> AllowedBy | None:
        return parse_reason(self.reason) if self.decision == "allow" else None

    @property
    def refused(self) -> bool:
        return self.decision == "forbid" or self.code == 403

    @property
    def target(self) -> str:
        """`group/resource/subresource` (core group left out)."""
        resource = "/".join(part for part in (self.resource, self.subresource) if part)
        return f"{self.api_group}/{resource}" if self.api_group and resource else resource or self.request_uri

    @property
    def object(self) -> str:
        return "/".join(part for part in (self.namespace, self.name) if part)


class EventError(ValueError):
    """A line that is not an audit.k8s.io Event; the message says what is missing."""


def _time(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise EventError(f"{what} missing (expected an RFC 3339 time)")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise EventError(f"{what} is not an RFC 3339 time: {value!r}") from exc
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_event(raw: Mapping[str, Any]) -> ApiCall:
    """One Event object (already JSON-decoded) as an ApiCall; EventError if it is not one."""
    if raw.get("kind") != "Event" or not str(raw.get("apiVersion", "")).startswith("audit.k8s.io/"):
        kind, version = raw.get("kind"), raw.get("apiVersion")
        raise EventError(f"not an audit.k8s.io Event (kind {kind!r}, apiVersion {version!r})")
    user = raw.get("impersonatedUser") or raw.get("user") or {}
    ref = raw.get("objectRef") or {}
    annotations = raw.get("annotations") or {}
    status = raw.get("responseStatus") or {}
    extra = user.get("extra") or {}
    return ApiCall(
        audit_id=str(raw.get("auditID", "")),
        time=_time(raw.get("requestReceivedTimestamp"), "requestReceivedTimestamp"),
        verb=str(raw.get("verb", "")),
        username=str(user.get("username", "")),
        groups=tuple(str(group) for group in user.get("groups") or ()),
        user_extra={str(key): tuple(str(v) for v in values or ()) for key, values in extra.items()},
        user_agent=str(raw.get("userAgent", "")),
        api_group=str(ref.get("apiGroup", "")),
        resource=str(ref.get("resource", "")),
        subresource=str(ref.get("subresource", "")),
        namespace=str(ref.get("namespace", "")),
        name=str(ref.get("name", "")),
        request_uri=str(raw.get("requestURI", "")),
        code=status.get("code") if isinstance(status.get("code"), int) else None,
        decision=str(annotations.get(DECISION_ANNOTATION, "")),
        reason=str(annotations.get(REASON_ANNOTATION, "")),
        source_ips=tuple(str(ip) for ip in raw.get("sourceIPs") or ()),
    )


def parse_lines(lines: Iterable[bytes | str]) -> Iterator[ApiCall]:
    """The calls in a stream of JSON lines; earlier stages, other kinds and blank lines are skipped.

    An `EventList` line (what an audit webhook posts) is unpacked into its items.
    """
    for line in lines:
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError:
            continue  # a line cut by rotation or a crash; the rest of the log still counts
        if not isinstance(raw, dict):
            continue
        items = [raw]
        if raw.get("kind") == "EventList":
            # A real kube-apiserver leaves kind and apiVersion off the items of the lists it posts:
            # they are the list's Events, so they get them from it.
            version = raw.get("apiVersion")
            items = [
                {"kind": "Event", "apiVersion": version, **item} if isinstance(item, dict) else item
                for item in raw.get("items") or []
            ]
        for item in items:
            if not isinstance(item, dict) or item.get("stage") not in FINAL_STAGES:
                continue
            try:
                yield parse_event(item)
            except EventError:
                continue
