"""TLS for the admission webhook server, made with `cryptography`.

kopf can generate a self-signed certificate itself, but through certbuilder/oscrypto, which cannot load
OpenSSL 3.0.x on our machines. This module makes a small CA and a server certificate signed by it
(SANs: localhost, 127.0.0.1, ::1 and the given hosts), writes them to a directory, and builds the
`kopf.WebhookServer` that serves with them. The CA's PEM is what goes into the webhook configurations'
`caBundle`. Optionally the server also demands a client certificate from the API server
(`client_ca_pem`), so that nobody else on the network can ask the webhook to mint receipts.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_VALIDITY = timedelta(days=365)


@dataclass(frozen=True)
class WebhookTLS:
    """Where the generated files are, and the CA certificate to trust them by."""

    certfile: Path
    pkeyfile: Path
    cafile: Path
    ca_pem: bytes
    ca_keyfile: Path


@dataclass(frozen=True)
class ClientCertificate:
    certfile: Path
    pkeyfile: Path


def name(common_name: str, *organizations: str) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _name(common_name: str) -> x509.Name:
    return name(common_name, "jitgrant")


def subject_alt_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return entries


def pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(pem_key(key))


def certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    sans: Sequence[x509.GeneralName] = (),
    usages: Sequence[x509.ObjectIdentifier] = (),
    now: datetime | None = None,
    valid_for: timedelta = DEFAULT_VALIDITY,
) -> x509.Certificate:
    """The one certificate builder of the test harness: a CA (self-signed when issuer is subject)
    or a leaf under one, with the key identifiers Go's and OpenSSL's verifiers both accept."""
    now = now or datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))  # clocks of the parties may differ a little
        .not_valid_after(now + valid_for)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _leaf(
    *,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    usage: x509.ObjectIdentifier,
    hosts: Sequence[str] | None,
    now: datetime,
    valid_for: timedelta,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(
        _name(common_name),
        key,
        ca_cert.subject,
        ca_key,
        ca=False,
        # Local names always: tests and the demo reach the server on 127.0.0.1.
        sans=subject_alt_names(["localhost", "127.0.0.1", "::1", *hosts]) if hosts is not None else (),
        usages=[usage],
        now=now,
        valid_for=valid_for,
    )
    return cert, key


def generate_webhook_tls(
    directory: Path,
    *,
    hosts: Sequence[str] = (),
    valid_for: timedelta = DEFAULT_VALIDITY,
    now: datetime | None = None,
) -> WebhookTLS:
    """Write ca.pem, ca-key.pem, tls.crt and tls.key into `directory` and say where they are."""
    now = now or datetime.now(UTC)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("jitgrant webhook CA")
    ca_cert = certificate(ca_name, ca_key, ca_name, ca_key, ca=True, now=now, valid_for=valid_for)
    cert, key = _leaf(
        ca_cert=ca_cert,
        ca_key=ca_key,
        common_name=hosts[0] if hosts else "localhost",
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        hosts=hosts,
        now=now,
        valid_for=valid_for,
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    tls = WebhookTLS(
        certfile=directory / "tls.crt",
        pkeyfile=directory / "tls.key",
        cafile=directory / "ca.pem",
        ca_pem=ca_pem,
        ca_keyfile=directory / "ca-key.pem",
    )
    tls.cafile.write_bytes(ca_pem)
    _write_key(tls.ca_keyfile, ca_key)
    tls.certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(tls.pkeyfile, key)
    return tls


def issue_client_certificate(
    tls: WebhookTLS,
    directory: Path,
    *,
    common_name: str = "kube-apiserver",
    valid_for: timedelta = DEFAULT_VALIDITY,
    now: datetime | None = None,
) -> ClientCertificate:
    """A client certificate from the same CA, for the API server to present to the webhook."""
    now = now or datetime.now(UTC)
    ca_cert = x509.load_pem_x509_certificate(tls.ca_pem)
    ca_key = serialization.load_pem_private_key(tls.ca_keyfile.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{tls.ca_keyfile} does not hold an EC private key")
    cert, key = _leaf(
        ca_cert=ca_cert,
        ca_key=ca_key,
        common_name=common_name,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        hosts=None,
        now=now,
        valid_for=valid_for,
    )
    directory.mkdir(parents=True, exist_ok=True)
    result = ClientCertificate(certfile=directory / "client.crt", pkeyfile=directory / "client.key")
    result.certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(result.pkeyfile, key)
    return result


def webhook_server(
    *,
    tls: WebhookTLS,
    port: int,
    addr: str | None = None,
    host: str | None = None,
    path: str | None = None,
    client_ca_pem: bytes | None = None,
) -> kopf.WebhookServer:
    """kopf's webhook server on `addr:port`, advertised to the API server as `https://host:port/path`.

    With `client_ca_pem`, TLS handshakes without a client certificate signed by that CA fail, so only
    the API server (holding such a certificate) can call the webhooks.
    """
    return kopf.WebhookServer(
        addr=addr,
        port=port,
        host=host,
        path=path,
        certfile=str(tls.certfile),
        pkeyfile=str(tls.pkeyfile),
        cadata=tls.ca_pem,
        verify_mode=ssl.CERT_REQUIRED if client_ca_pem is not None else None,
        verify_cadata=client_ca_pem.decode("ascii") if client_ca_pem is not None else None,
    )


def client_ssl_context(tls: WebhookTLS, client: ClientCertificate | None = None) -> ssl.SSLContext:
    """An SSL context that trusts the webhook CA (and presents a client certificate if given)."""
    context = ssl.create_default_context(cadata=tls.ca_pem.decode("ascii"))
    if client is not None:
        context.load_cert_chain(str(client.certfile), str(client.pkeyfile))
    return context
