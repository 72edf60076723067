"""Which API calls belong to a grant, and how sure that is.

Pure. Two ways to tie a call to a grant, best first:

* **exact** (`authorization-reason`): the RBAC authorizer wrote, in the call's
  `authorization.k8s.io/reason`, that this grant's RoleBinding allowed it, for a call by the grant's
  identity within its window. The reason names the binding only by name and namespace, and a grant's
  binding name is deterministic: once the grant has ended, anyone who may create RoleBindings there
  can make one under the same name for someone else, whose calls then carry the same reason. So
  the name counts only together with the grant's identity and window, like the basis below.
* **identity and window** (`identity-window`): the call was made by the grant's identity while the
  grant was live. For a per-grant ServiceAccount (agents that receive a kubeconfig) or an EKS role
  session named after the request, that identity is the grant's alone; for an in-cluster agent's own
  ServiceAccount it also covers what its other permissions allowed, which the reason then tells
  apart (`allowed by something else`). Refused calls carry no binding, so they are always tied this
  way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from jitgrant.activity.events import AllowedBy, ApiCall


class Basis(StrEnum):
    AUTHORIZATION_REASON = "authorization-reason"
    IDENTITY_WINDOW = "identity-window"


class Outcome(StrEnum):
    THIS_GRANT = "allowed by this grant"
    OTHER = "allowed by something else"
    UNKNOWN = "allowed (by what is not recorded)"
    REFUSED = "refused"


#: Audit timestamps and the grant's own times come from different clocks (API server, operator).
DEFAULT_CLOCK_SKEW = timedelta(seconds=5)


@dataclass(frozen=True)
class GrantIdentity:
    """What identifies one grant's calls: its RoleBinding, who it binds, and its window."""

    binding_name: str
    binding_namespace: str
    usernames: frozenset[str]
    start: datetime
    end: datetime | None = None  # None while the grant is live
    #: EKS: the assumed role session is named after the request; it shows in user.extra.sessionName.
    session_name: str | None = None
    #: The identity exists for this grant only (a per-grant ServiceAccount): every call it made was
    #: allowed by this grant or by nothing.
    dedicated: bool = False
    skew: timedelta = DEFAULT_CLOCK_SKEW

    def in_window(self, time: datetime) -> bool:
        if time < self.start - self.skew:
            return False
        return self.end is None or time <= self.end + self.skew

    def is_identity(self, call: ApiCall) -> bool:
        if call.username in self.usernames:
            return True
        return self.session_name is not None and self.session_name in call.user_extra.get("sessionName", ())

    def is_binding(self, allowed_by: AllowedBy | None) -> bool:
        return (
            allowed_by is not None
            and allowed_by.kind == "RoleBinding"
            and allowed_by.name == self.binding_name
            and allowed_by.namespace == self.binding_namespace
        )


@dataclass(frozen=True)
class AttributedCall:
    call: ApiCall
    outcome: Outcome
    basis: Basis

    @property
    def explanation(self) -> str:
        if self.basis is Basis.AUTHORIZATION_REASON:
            return "exact: the API server's authorization reason names this grant's RoleBinding"
        allowed_by = self.call.allowed_by
        other = f"; allowed by {allowed_by.describe()}" if allowed_by else ""
        return f"the grant's identity during its window{other}"

    def to_json(self) -> dict[str, object]:
        call = self.call
        return {
            "time": call.time.isoformat().replace("+00:00", "Z"),
            "verb": call.verb,
            "resource": call.target,
            "namespace": call.namespace or None,
            "name": call.name or None,
            "code": call.code,
            "user": call.username,
            "userAgent": call.user_agent,
            "outcome": self.outcome.value,
            "attribution": self.basis.value,
            "explanation": self.explanation,
            "auditID": call.audit_id,
        }


def attribute(call: ApiCall, grant: GrantIdentity) -> AttributedCall | None:
    """The call as one of the grant's, or None when it is not: only the grant's identity, within the
    grant's window, ever makes one (a binding recreated under its name binds someone else, later)."""
    if not (grant.is_identity(call) and grant.in_window(call.time)):
        return None
    allowed_by = call.allowed_by
    if grant.is_binding(allowed_by):
        return AttributedCall(call, Outcome.THIS_GRANT, Basis.AUTHORIZATION_REASON)
    if call.refused:
        outcome = Outcome.REFUSED
    elif allowed_by is not None:
        outcome = Outcome.OTHER
    elif grant.dedicated:
        outcome = Outcome.THIS_GRANT  # a per-grant ServiceAccount has no other permission to use
    else:
        outcome = Outcome.UNKNOWN
    return AttributedCall(call, outcome, Basis.IDENTITY_WINDOW)


def activity(calls: Iterable[ApiCall], grant: GrantIdentity) -> list[AttributedCall]:
    """The grant's calls in time order, each once (a call read twice, e.g. from two sources, counts once)."""
    seen: set[str] = set()
    found: list[AttributedCall] = []
    for call in calls:
        if call.audit_id and call.audit_id in seen:
            continue
        attributed = attribute(call, grant)
        if attributed is not None:
            if call.audit_id:
                seen.add(call.audit_id)
            found.append(attributed)
    return sorted(found, key=lambda item: (item.call.time, item.call.audit_id))
