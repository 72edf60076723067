"""What the admission webhooks read from kopf's memo (`memo.runtime`): a typed Protocol, so a missing
attribute is a type error, not a `getattr` probe that quietly skips a check. The operator's `Runtime`
(reactor/runtime.py) is one; the webhook tests build a smaller one over the fake cluster port."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from jitgrant.clusters.port import RequestStore
from jitgrant.identity.oidc import OIDCVerifier
from jitgrant.lifecycle.open_requests import OpenRequests, RefusalTally
from jitgrant.metrics import Metrics
from jitgrant.models import GrantPolicySpec
from jitgrant.policy.gate import ReadyState
from jitgrant.reconcile.ports import AuditPort
from jitgrant.settings import OperatorSettings


class AdmissionContext(Protocol):
    """Read-only to the webhooks (properties, so the operator's wider types fit)."""

    @property
    def settings(self) -> OperatorSettings: ...

    @property
    def own(self) -> RequestStore:
        """The own cluster: the access review (who may delete a request) and the deleter's stamp."""
        ...

    @property
    def audit(self) -> AuditPort: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def open_requests(self) -> OpenRequests:
        """This replica's index of open requests (lifecycle/open_requests.py)."""
        ...

    @property
    def refusals(self) -> RefusalTally:
        """Guardrail refusals, audited at most once per requester per minute."""
        ...

    @property
    def watched_policies(self) -> dict[str, GrantPolicySpec]:
        """GrantPolicies from this replica's watch: a real create reads its policy here."""
        ...

    @property
    def watched_ready(self) -> dict[str, ReadyState]:
        """The watched policies' Ready conditions: a request under one not Ready is refused."""
        ...

    @property
    def namespace_labels(self) -> dict[str, dict[str, str]]:
        """Namespace labels from this replica's Namespace watch (namespaceSelector policies)."""
        ...

    @property
    def oidc(self) -> OIDCVerifier | None:
        """The verifier of agents' OIDC tokens (JWKS cache, replay memory); None: a default one."""
        ...

    @property
    def operator_usernames(self) -> Collection[str]: ...

    def clock(self) -> datetime: ...

    async def get_policy(self, name: str) -> GrantPolicySpec | None: ...
