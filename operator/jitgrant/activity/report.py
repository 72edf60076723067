"""A grant's activity as one typed document: what the Python client and the MCP server return.

The same fields as `jitgrant activity -o json` (camelCase on the wire), as pydantic models an agent
or a model reads field by field. `read` is the one place a source is read for a grant.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import Field

from jitgrant.activity.attribution import AttributedCall, Basis, GrantIdentity, Outcome, activity
from jitgrant.activity.base import AuditSource, Window
from jitgrant.models.base import WireModel
from jitgrant.models.request import AccessRequest


def read(source: AuditSource, grant: GrantIdentity) -> list[AttributedCall]:
    """The grant's calls in `source`, in time order; SourceError when it cannot be read."""
    terms = frozenset({*grant.usernames, grant.binding_name})
    return activity(source.calls(Window(start=grant.start, end=grant.end, terms=terms)), grant)


class ActivityCall(WireModel):
    """One API call tied to the grant, as the API server's audit log recorded it."""

    time: datetime
    verb: str
    resource: str = Field(description="group/resource[/subresource], e.g. apps/deployments")
    namespace: str | None = None
    name: str | None = None
    code: int | None = Field(default=None, description="the HTTP status the API server answered")
    user: str
    user_agent: str = ""
    outcome: Outcome
    attribution: Basis = Field(
        description="authorization-reason (exact: the API server named this grant's RoleBinding) "
        "or identity-window (made by the grant's identity while it was live)"
    )
    explanation: str
    audit_id: str = Field(default="", alias="auditID")

    @classmethod
    def of(cls, item: AttributedCall) -> ActivityCall:
        call = item.call
        return cls(
            time=call.time,
            verb=call.verb,
            resource=call.target,
            namespace=call.namespace or None,
            name=call.name or None,
            code=call.code,
            user=call.username,
            user_agent=call.user_agent,
            outcome=item.outcome,
            attribution=item.basis,
            explanation=item.explanation,
            audit_id=call.audit_id,
        )

    @property
    def allowed_by_grant(self) -> bool:
        return self.outcome is Outcome.THIS_GRANT


class ActivityWindow(WireModel):
    start: datetime
    end: datetime | None = Field(default=None, description="None while the grant is live")


class Activity(WireModel):
    """What the grant's identity did while the grant was live, and how each call was tied to it."""

    request: str = Field(description="namespace/name of the AccessRequest")
    role_binding: str = Field(description="namespace/name of the grant's RoleBinding")
    identities: tuple[str, ...]
    window: ActivityWindow
    source: str = Field(description="where the calls were read: an audit log file, a CloudWatch log group")
    counts: dict[str, int] = Field(description="calls per outcome")
    calls: tuple[ActivityCall, ...]

    @classmethod
    def of(
        cls, request: AccessRequest, grant: GrantIdentity, source: str, calls: Sequence[AttributedCall]
    ) -> Activity:
        counts = {outcome.value: 0 for outcome in Outcome}
        for item in calls:
            counts[item.outcome.value] += 1
        return cls(
            request=f"{request.metadata.namespace}/{request.metadata.name}",
            role_binding=f"{grant.binding_namespace}/{grant.binding_name}",
            identities=tuple(sorted(grant.usernames)),
            window=ActivityWindow(start=grant.start, end=grant.end),
            source=source,
            counts=counts,
            calls=tuple(ActivityCall.of(item) for item in calls),
        )

    @property
    def allowed_by_grant(self) -> tuple[ActivityCall, ...]:
        return tuple(call for call in self.calls if call.outcome is Outcome.THIS_GRANT)

    @property
    def refused(self) -> tuple[ActivityCall, ...]:
        return tuple(call for call in self.calls if call.outcome is Outcome.REFUSED)
