"""jitgrant.client: just-in-time access from Python, as the agent that needs it.

    from jitgrant.client import Client

    client = Client.from_kubeconfig()
    with client.grant(policy="oncall-restart", namespace="payments",
                      cluster_role="jit-restart-checkout", duration="10m", justification="INC-1") as grant:
        ...  # the access exists here; grant.kubeconfig holds a delivered kubeconfig, if any

`AsyncClient` is the asyncio core; `Client` wraps it for blocking code. Errors are one family,
`JitgrantError`, each with a `reason` from `jitgrant.models.vocabulary.Reason`.

What a grant was used for, from the API server's audit log (the same sources as `jitgrant activity`):

    client.activity("restart-checkout-x7k2p", source=AuditLogFiles("/var/log/kubernetes/audit/audit.log"))
"""

from jitgrant.activity.base import AuditSource
from jitgrant.activity.files import AuditLogFiles
from jitgrant.activity.report import Activity, ActivityCall
from jitgrant.client._api import Connection
from jitgrant.client._async import AsyncClient
from jitgrant.client._sync import Client
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
    ending_words,
)
from jitgrant.client.results import CheckResult, Grant, Grantable, Identity, Progress
from jitgrant.models.vocabulary import Reason

__all__ = [
    "AccessDenied",
    "AccessEnded",
    "AccessFailed",
    "AccessTimedOut",
    "Activity",
    "ActivityCall",
    "ActivityUnavailable",
    "ApiRefused",
    "ApiUnreachable",
    "AsyncClient",
    "AuditLogFiles",
    "AuditSource",
    "CheckResult",
    "Client",
    "Connection",
    "Grant",
    "Grantable",
    "Identity",
    "InvalidRequest",
    "JitgrantError",
    "NotYourRequest",
    "Progress",
    "Reason",
    "RequestNotFound",
    "ending_words",
]
