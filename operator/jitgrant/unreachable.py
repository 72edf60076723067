"""Why the API server could not be reached, in words that name the fix (shared by the CLI's commands
and the agent client, without loading either's HTTP stack)."""

from __future__ import annotations

import ssl


def unreachable(host: str, exc: BaseException) -> str:
    """Why `host` could not be reached, said precisely for the case people hit most: a certificate the
    kubeconfig's CA does not vouch for (a playground's kubeconfig from an earlier run, a missing
    certificate-authority-data) is not "is the cluster up?"."""
    detail = str(exc) or type(exc).__name__
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    verify = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
    if verify is not None or "CERTIFICATE_VERIFY_FAILED" in detail:
        # aiohttp's ClientConnectorCertificateError is an SSLCertVerificationError holding the real one.
        original = getattr(verify, "certificate_error", verify)
        why = getattr(original, "verify_message", None) or "certificate verify failed"
        return (
            f"the API server at {host} presented a certificate that is not trusted ({why}): the "
            "kubeconfig's certificate-authority-data (or certificate-authority) must hold the CA that "
            "signed it; use the kubeconfig the cluster (or the playground) wrote"
        )
    return (
        f"cannot reach the API server at {host} ({detail}); check that the cluster is up and that "
        "--kubeconfig (or KUBECONFIG) points at it"
    )
