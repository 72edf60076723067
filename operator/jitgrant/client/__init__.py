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

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Where each public name lives: loaded on first use, so a command that needs one error class does not
# import aiohttp, the activity readers and the whole client with it (tests/cli/test_light_imports.py).
_HOMES = {
    "AuditSource": "jitgrant.activity.base",
    "AuditLogFiles": "jitgrant.activity.files",
    "Activity": "jitgrant.activity.report",
    "ActivityCall": "jitgrant.activity.report",
    "Connection": "jitgrant.client._api",
    "AsyncClient": "jitgrant.client._async",
    "Client": "jitgrant.client._sync",
    "CheckResult": "jitgrant.client.results",
    "Grant": "jitgrant.client.results",
    "Grantable": "jitgrant.client.results",
    "Identity": "jitgrant.client.results",
    "Progress": "jitgrant.client.results",
    "Reason": "jitgrant.models.vocabulary",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name, "jitgrant.client.errors" if name in __all__ else None)
    if home is None:
        raise AttributeError(f"module 'jitgrant.client' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
