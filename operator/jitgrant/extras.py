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

#: The AWS services jitgrant creates boto3 clients for: STS (AssumeRole, EKS tokens), EKS, and
#: S3 and CloudWatch Logs (audit sinks and readers). The image keeps only these services' models
#: of botocore's data (23 MB for about 450 services); tests/image/test_aws_services.py reads the
#: source and fails when a client is made for a service missing here.
AWS_SERVICES = ("eks", "logs", "s3", "sts")

#: The services botocore's own credential providers create clients for: assume-role profiles and
#: web identity (IRSA) through STS, SSO profiles through SSO and SSO-OIDC, `aws login` sessions
#: through Signin. Kept in the image beside AWS_SERVICES so every credential source still works.
AWS_CREDENTIAL_SERVICES = ("signin", "sso", "sso-oidc", "sts")


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
