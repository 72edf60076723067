"""Optional dependencies: loaded when a feature needs them, with the command that installs them.

The operator's runtime install carries only what every deployment needs. boto3 (EKS targets, the
S3 and CloudWatch audit sinks and readers) comes with the `aws` extra; the modules that use it
import it inside the functions that need it, after `require()`, so a plain install starts, and a
configuration that asks for AWS fails at start-up saying what to install (pydantic-settings does
the same for its cloud providers).
"""

from __future__ import annotations

from importlib.util import find_spec

#: extra -> the top-level modules it provides.
EXTRAS = {"aws": ("boto3", "botocore")}


class MissingExtra(ImportError):
    """A feature was configured whose optional dependencies are not installed."""

    def __init__(self, *, feature: str, extra: str, missing: str) -> None:
        super().__init__(
            f"{feature} needs {missing}, which is not installed; "
            f"install it with: pip install 'jitgrant[{extra}]'",
            name=missing,
        )
        self.feature = feature
        self.extra = extra


def require(extra: str, *, feature: str) -> None:
    """Raise MissingExtra unless every module of `extra` can be imported."""
    for module in EXTRAS[extra]:
        if find_spec(module) is None:
            raise MissingExtra(feature=feature, extra=extra, missing=module)
