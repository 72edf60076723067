"""Operator settings: loaded once at start-up (never read from the environment at import time)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jitgrant.models.rbac import DenyRule


class WebhookSettings(BaseModel):
    """Where kopf's admission webhook server listens and with which TLS files."""

    model_config = ConfigDict(frozen=True)
    host: str = "0.0.0.0"  # noqa: S104 - in a pod the API server reaches us through the Service
    port: int = 9443
    certfile: Path | None = None
    keyfile: Path | None = None
    # Embedded/dev mode: generate a CA and certificate with `cryptography` and let kopf register the
    # webhook configurations itself (kopf's own self-signed path fails on OpenSSL 3.0.x here).
    self_signed: bool = False
    manage_configurations: bool = False
    public_host: str | None = None  # the address the API server uses to reach the webhook server
    # The CA that signed the API server's client certificate for webhooks (its
    # --admission-control-config-file kubeconfig): a TLS handshake without a certificate it signed
    # fails, so only the API server can call the webhooks. None: any caller that reaches the port.
    client_ca_file: Path | None = None


class OperatorSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    operator_namespace: str = "jitgrant-system"
    # The namespace the operator owns for the identities it hands out (in every cluster it grants
    # in): per-grant ServiceAccounts and their tokens, and in its own cluster the kubeconfig Secrets
    # and their reader Role/RoleBinding. Its rights on ServiceAccounts, tokens and Secrets exist only
    # there (docs/install.md, "What the operator can do").
    grants_namespace: str = "jitgrant-grants"
    instance: str = "jitgrant"
    inline_rules_enabled: bool = False
    # Permissions no grant under any policy may carry (issue 31 §5; the chart's `denyRules`), added to
    # each policy's own spec.deny.
    deny_rules: tuple[DenyRule, ...] = ()
    # HMAC key for requester seals and approval receipts; only the operator holds it.
    receipt_key: bytes = Field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    sweep_interval: timedelta = timedelta(seconds=30)
    # How long a finished request (Expired, Revoked, Denied, TimedOut, Failed) stays before the
    # operator audits its removal and deletes it; zero keeps finished requests forever.
    finished_retention: timedelta = Field(default=timedelta(days=7), ge=timedelta(0))
    # How long an approved request waits for its target namespace to appear before it fails.
    namespace_wait: timedelta = Field(default=timedelta(seconds=60), ge=timedelta(0))
    # (connect, read) seconds for each call to a target cluster's API server.
    target_request_timeout: tuple[float, float] = (5.0, 20.0)
    # Requests reconciled at once; the rest wait their turn in the order they became due.
    concurrency: int = Field(default=8, ge=1, le=256)
    # Identity provider keys (docs/identity-and-approvals.md, "Signing keys"): the JWKS is kept for
    # its Cache-Control max-age up to `jwks_cache_ttl`, so a key the IdP removed stops being accepted
    # within it; a token with an unknown kid refetches at once, at most once per
    # `jwks_refetch_interval` per issuer; discovery + JWKS together get `identity_fetch_budget`, well
    # inside the API server's 10 s webhook timeout.
    jwks_cache_ttl: timedelta = Field(default=timedelta(minutes=5), gt=timedelta(0), le=timedelta(hours=24))
    jwks_refetch_interval: timedelta = Field(
        default=timedelta(seconds=5), ge=timedelta(0), le=timedelta(hours=1)
    )
    identity_fetch_budget: timedelta = Field(
        default=timedelta(seconds=3), gt=timedelta(0), le=timedelta(seconds=8)
    )
    audit_config: Path | None = None
    audit_file: Path | None = None
    audit_stdout: bool = True
    metrics_port: int | None = None
    health_port: int | None = None
    # Reach EKS targets through an assumed IAM role, with the pod's AWS credentials (IRSA).
    eks_enabled: bool = False
    webhook: WebhookSettings | None = None
    # The operator's own authenticated username: its metadata and finalizer patches are the only
    # updates the validating webhook lets through without an approval receipt.
    operator_username: str = "system:serviceaccount:jitgrant-system:jitgrant"

    @model_validator(mode="after")
    def _grants_namespace_is_not_the_operator_s(self) -> OperatorSettings:
        # The operator may read every Secret of the grants namespace; its own holds the receipt key.
        if self.grants_namespace == self.operator_namespace:
            raise ValueError(
                f"grants_namespace (--grants-namespace) {self.grants_namespace!r} is the operator's own "
                "namespace; name another (e.g. jitgrant-grants): the operator may read every Secret there"
            )
        return self

    @classmethod
    def with_receipt_key_file(cls, path: Path, **kwargs: object) -> OperatorSettings:
        # Trimmed because keys are usually written with `echo` or a text editor; a binary key
        # with whitespace at its ends would lose those bytes, so the length is checked after.
        key = path.read_bytes().strip()
        if len(key) < 32:
            raise ValueError(
                f"--receipt-key-file {path}: {len(key)} bytes after trimming whitespace; "
                "at least 32 are needed (the chart's Secret holds 64 random characters)"
            )
        return cls(receipt_key=key, **kwargs)
