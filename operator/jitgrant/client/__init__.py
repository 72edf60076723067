"""jitgrant.client: just-in-time access from Python, as the agent that needs it.

    from jitgrant.client import Client

    client = Client.from_kubeconfig()
    with client.grant(policy="oncall-restart", namespace="payments",
                      cluster_role="jit-restart-checkout", duration="10m", reason="INC-1") as grant:
        ...  # the access exists here; grant.kubeconfig holds a delivered kubeconfig, if any

`AsyncClient` is the asyncio core; `Client` wraps it for blocking code. Errors are one family,
`JitgrantError`, each with a `reason` from `jitgrant.models.vocabulary.Reason`.
"""

from jitgrant.client._async import AsyncClient
from jitgrant.client._sync import Client
from jitgrant.client.errors import (
    AccessDenied,
    AccessEnded,
    AccessFailed,
    AccessTimedOut,
    ApiRefused,
    ApiUnreachable,
    JitgrantError,
    NotYourRequest,
    RequestNotFound,
)
from jitgrant.client.results import CheckResult, Grant, Grantable, Identity, Progress

__all__ = [
    "AccessDenied",
    "AccessEnded",
    "AccessFailed",
    "AccessTimedOut",
    "ApiRefused",
    "ApiUnreachable",
    "AsyncClient",
    "CheckResult",
    "Client",
    "Grant",
    "Grantable",
    "Identity",
    "JitgrantError",
    "NotYourRequest",
    "Progress",
    "RequestNotFound",
]
