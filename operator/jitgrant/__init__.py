"""jitgrant: just-in-time, time-boxed RBAC grants for AI agents and automation on Kubernetes and EKS.

The public surface is small: the resource models, `run()` (the operator) and the `jitgrant` command
(`jitgrant.cli.main:main`). Everything else is internal and grouped by concern.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jitgrant.models import (
        AccessRequest,
        AccessRequestSpec,
        AccessRequestStatus,
        GrantPolicy,
        GrantPolicySpec,
        Phase,
    )
    from jitgrant.operator.runner import run

__version__ = "0.1.0"
__all__ = [
    "AccessRequest",
    "AccessRequestSpec",
    "AccessRequestStatus",
    "GrantPolicy",
    "GrantPolicySpec",
    "Phase",
    "__version__",
    "run",
]


def __getattr__(name: str) -> Any:
    # The operator pulls in kopf and the Kubernetes client; importing the models must not. The models
    # are loaded on first use too: every `jitgrant` command imports this package, and `--help` has
    # no use for pydantic.
    if name in __all__ and name not in ("run", "__version__"):
        import jitgrant.models

        return getattr(jitgrant.models, name)
    if name == "run":
        from jitgrant.operator.runner import run

        return run
    raise AttributeError(f"module 'jitgrant' has no attribute {name!r}")
