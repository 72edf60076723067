"""Admission webhooks: the right paths, fail closed, and TLS the API server will trust."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import helm_python as helm
import kopf
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from kopf._cogs.structs import references
from kopf._core.engines.admission import build_webhooks
from kopf._core.intents.causes import WebhookType

from jitgrant.operator import admission, policy_admission

from .conftest import COMBINATIONS, NAMESPACE, Manifest, only, render

SERVICE_NAMES = [
    "jitgrant-webhook",
    f"jitgrant-webhook.{NAMESPACE}",
    f"jitgrant-webhook.{NAMESPACE}.svc",
    f"jitgrant-webhook.{NAMESPACE}.svc.cluster.local",
]


def webhooks(manifests: list[Manifest], kind: str) -> dict[str, dict[str, Any]]:
    configuration = only(manifests, kind, "jitgrant")
    return {entry["name"]: entry for entry in configuration["webhooks"]}


def all_webhooks(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    return {
        **webhooks(manifests, "MutatingWebhookConfiguration"),
        **webhooks(manifests, "ValidatingWebhookConfiguration"),
    }


def kopf_webhooks() -> dict[str, tuple[str, dict[str, Any]]]:
    """What kopf itself would register for jitgrant's admission handlers: name -> (kind, entry)."""
    registry = kopf.OperatorRegistry()
    admission.register(registry)
    policy_admission.register(registry)
    resources = [
        references.Resource("jitgrant.dev", "v1alpha1", "accessrequests"),
        references.Resource("jitgrant.dev", "v1alpha1", "grantpolicies"),
    ]
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for reason, kind in (
        (WebhookType.MUTATING, "MutatingWebhookConfiguration"),
        (WebhookType.VALIDATING, "ValidatingWebhookConfiguration"),
    ):
        handlers = [h for h in registry._webhooks.get_all_handlers() if h.reason == reason]
        for entry in build_webhooks(
            handlers, resources=resources, name_suffix="jitgrant.dev", client_config={"url": "https://x"}
        ):
            found[entry["name"]] = (kind, dict(entry))
    return found


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_webhooks_match_the_handlers_kopf_registers_and_fail_closed(
    chart: helm.Chart, combination: str
) -> None:
    manifests = render(chart, COMBINATIONS[combination])
    expected = kopf_webhooks()
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        assert set(webhooks(manifests, kind)) == {n for n, (k, _) in expected.items() if k == kind}, kind
    rendered = all_webhooks(manifests)
    for name, (_, registered) in expected.items():
        entry = rendered[name]
        # kopf serves an admission handler at /<handler id>.
        assert "https://x" + entry["clientConfig"]["service"]["path"] == registered["clientConfig"]["url"]
        assert entry["failurePolicy"] == registered["failurePolicy"] == "Fail"
        assert entry["sideEffects"] == registered["sideEffects"], name
        assert entry["admissionReviewVersions"] == ["v1"]
        assert entry["clientConfig"]["service"]["name"] == "jitgrant-webhook"
        assert entry["clientConfig"]["service"]["namespace"] == NAMESPACE
        assert entry["clientConfig"]["service"]["port"] == 443
        [rule] = entry["rules"]
        [kopf_rule] = registered["rules"]
        for field in ("apiGroups", "apiVersions", "resources", "operations"):
            assert rule[field] == kopf_rule[field], (name, field)


def test_each_webhook_covers_exactly_what_its_handler_needs(chart: helm.Chart) -> None:
    """Spelled out, so a change to the handlers and the chart together still has to change this."""
    rendered = all_webhooks(render(chart))
    summary = {
        name: (
            entry["clientConfig"]["service"]["path"],
            entry["rules"][0]["operations"],
            entry["rules"][0]["resources"],
            entry["sideEffects"],
        )
        for name, entry in rendered.items()
    }
    assert summary == {
        # CREATE stamps and seals; UPDATE records approvals with receipts (an approval is an UPDATE).
        # It uses up OIDC tokens on CREATE, except on dry runs.
        "stamp-requester.jitgrant.dev": (
            "/stamp-requester",
            ["CREATE", "UPDATE"],
            ["accessrequests"],
            "NoneOnDryRun",
        ),
        "validate-request.jitgrant.dev": (
            "/validate-request",
            ["CREATE", "UPDATE"],
            ["accessrequests"],
            "None",
        ),
        # Only the operator writes status.
        "guard-status.jitgrant.dev": ("/guard-status", ["UPDATE"], ["accessrequests/status"], "None"),
        # Records who deletes a request (identity-and-approvals.md, "Metadata that decides a request's fate"):
        # its write is its side effect.
        "record-deletion.jitgrant.dev": (
            "/record-deletion",
            ["DELETE"],
            ["accessrequests"],
            "NoneOnDryRun",
        ),
        # A GrantPolicy the operator could not use is refused at apply time.
        "validate-policy.jitgrant.dev": ("/validate-policy", ["CREATE", "UPDATE"], ["grantpolicies"], "None"),
    }
    assert set(webhooks(render(chart), "MutatingWebhookConfiguration")) == {"stamp-requester.jitgrant.dev"}


def test_webhook_service_reaches_the_webhook_port_even_when_not_ready(chart: helm.Chart) -> None:
    manifests = render(chart)
    service = only(manifests, "Service", "jitgrant-webhook")
    deployment = only(manifests, "Deployment")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    [port] = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (443, "webhook")
    # Revocations arrive as UPDATEs through the validating webhook and must pass while the audit
    # path is down (readiness failing); the operator refuses new requests itself meanwhile.
    assert service["spec"]["publishNotReadyAddresses"] is True


def decode(data: str) -> bytes:
    return base64.b64decode(data)


def test_generated_certificate_is_trusted_through_the_ca_bundle(chart: helm.Chart) -> None:
    manifests = render(chart, COMBINATIONS["generated-cert"])
    secret = only(manifests, "Secret", "jitgrant-webhook-tls")
    assert secret["type"] == "kubernetes.io/tls"
    cert = x509.load_pem_x509_certificate(decode(secret["data"]["tls.crt"]))
    ca = x509.load_pem_x509_certificate(decode(secret["data"]["ca.crt"]))
    key = serialization.load_pem_private_key(decode(secret["data"]["tls.key"]), password=None)

    # Every webhook of both configurations carries the CA that signed the serving certificate.
    entries = all_webhooks(manifests)
    assert len(entries) == 5
    for entry in entries.values():
        assert decode(entry["clientConfig"]["caBundle"]) == decode(secret["data"]["ca.crt"])
    ca_key = ca.public_key()
    assert isinstance(ca_key, rsa.RSAPublicKey)
    assert cert.signature_hash_algorithm is not None
    ca_key.verify(
        cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm
    )
    assert cert.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True

    # The key in the Secret belongs to the certificate.
    cert_key = cert.public_key()
    assert isinstance(key, rsa.RSAPrivateKey) and isinstance(cert_key, rsa.RSAPublicKey)
    assert key.public_key().public_numbers() == cert_key.public_numbers()

    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == SERVICE_NAMES
    now = datetime.now(UTC)
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
    assert cert.not_valid_after_utc - now > timedelta(days=3000)


def test_generated_certificates_differ_per_install(chart: helm.Chart) -> None:
    """Offline there is nothing to look up, so each render generates; upgrades reuse (see
    test_upgrade_stability.py)."""
    first = only(render(chart), "Secret", "jitgrant-webhook-tls")["data"]["ca.crt"]
    second = only(render(chart), "Secret", "jitgrant-webhook-tls")["data"]["ca.crt"]
    assert first != second


def test_cert_manager_issues_the_certificate_and_injects_the_ca(chart: helm.Chart) -> None:
    manifests = render(chart, COMBINATIONS["cert-manager"])
    certificate = only(manifests, "Certificate")
    issuer = only(manifests, "Issuer")
    assert issuer["spec"] == {"selfSigned": {}}
    assert certificate["spec"]["issuerRef"] == {"name": issuer["metadata"]["name"], "kind": "Issuer"}
    assert certificate["spec"]["dnsNames"] == SERVICE_NAMES
    assert "server auth" in certificate["spec"]["usages"]
    volume = next(
        v
        for v in only(manifests, "Deployment")["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "webhook-tls"
    )
    assert volume["secret"]["secretName"] == certificate["spec"]["secretName"]
    assert not [
        m for m in manifests if m["kind"] == "Secret" and m["metadata"]["name"] == "jitgrant-webhook-tls"
    ]
    injected = f"{NAMESPACE}/{certificate['metadata']['name']}"
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        configuration = only(manifests, kind)
        assert configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == injected
        for entry in configuration["webhooks"]:
            assert "caBundle" not in entry["clientConfig"]


def test_cert_manager_with_an_existing_issuer_creates_none(chart: helm.Chart) -> None:
    manifests = render(chart, COMBINATIONS["cert-manager-cluster-issuer"])
    assert not [m for m in manifests if m["kind"] == "Issuer"]
    assert only(manifests, "Certificate")["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer"}


def test_auto_uses_cert_manager_only_when_the_cluster_serves_it(chart: helm.Chart) -> None:
    without = render(chart, api_versions=[])
    assert not [m for m in without if m["kind"] == "Certificate"]
    assert only(without, "Secret", "jitgrant-webhook-tls")

    with_cert_manager = render(chart, api_versions=["cert-manager.io/v1"])
    assert only(with_cert_manager, "Certificate")
    assert not [m for m in with_cert_manager if m["kind"] == "Secret" and "webhook" in m["metadata"]["name"]]

    forced_off = render(chart, COMBINATIONS["generated-cert"], api_versions=["cert-manager.io/v1"])
    assert not [m for m in forced_off if m["kind"] == "Certificate"]


def test_cert_manager_private_key_is_ecdsa_and_rotated(chart: helm.Chart) -> None:
    certificate = only(render(chart, COMBINATIONS["cert-manager"]), "Certificate")
    assert certificate["spec"]["privateKey"] == {
        "algorithm": "ECDSA",
        "size": 256,
        "rotationPolicy": "Always",
    }


def test_the_webhook_can_require_the_api_servers_client_certificate(chart: helm.Chart) -> None:
    """Issue 20 §7: webhook.clientCA passes the CA to the operator, which then refuses any TLS handshake
    without a client certificate it signed (tests/realapi/test_webhook_client_cert.py)."""
    values = {"webhook": {"clientCA": {"enabled": True, "configMap": "apiserver-webhook-client-ca"}}}
    deployment = only(render(chart, values), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [operator] = pod["containers"]
    args = operator["args"]
    assert args[args.index("--webhook-client-ca") + 1] == "/etc/jitgrant/webhook-client-ca/ca.crt"
    [mount] = [m for m in operator["volumeMounts"] if m["name"] == "webhook-client-ca"]
    assert mount["mountPath"] == "/etc/jitgrant/webhook-client-ca"
    [volume] = [v for v in pod["volumes"] if v["name"] == "webhook-client-ca"]
    assert volume["configMap"]["name"] == "apiserver-webhook-client-ca"
    # Off by default: EKS and most managed control planes present no client certificate.
    default = only(render(chart), "Deployment")["spec"]["template"]["spec"]
    assert "--webhook-client-ca" not in default["containers"][0]["args"]
    with pytest.raises(Exception, match=r"webhook\.clientCA\.configMap"):
        render(chart, {"webhook": {"clientCA": {"enabled": True}}})
