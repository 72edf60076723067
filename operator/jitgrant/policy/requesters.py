"""Does the identity stamped on a request belong to a policy's requesters?

The stamp comes from the admission webhook (Kubernetes userInfo) or from a verified OIDC token,
never from what the requester typed. The two kinds of proof never stand in for each other: a
Kubernetes user named like an OIDC subject does not match an OIDC entry, and an OIDC token whose
groups claim says "sre" does not match the policy's Kubernetes group "sre".

Pure: no I/O.
"""

from __future__ import annotations

from jitgrant.models import OIDCRequester, ProofKind, Requesters, RequesterStamp


def _join(items: tuple[str, ...] | list[str]) -> str:
    return ", ".join(items)


def _kubernetes_matches(requesters: Requesters, requester: RequesterStamp) -> bool:
    username = requester.username
    if username and any(account.username == username for account in requesters.service_accounts):
        return True
    if username and username in requesters.users:
        return True
    return bool({group for group in requester.groups if group} & set(requesters.groups))


def _oidc_entry_matches(entry: OIDCRequester, requester: RequesterStamp) -> bool:
    # An entry that names no subjects and no groups admits nobody: trusting every account of an
    # issuer (a public identity provider, say) is never what a narrow grant policy means.
    if requester.subject and requester.subject in entry.subjects:
        return True
    return bool({group for group in requester.groups if group} & set(entry.groups))


def _describe_kubernetes(requesters: Requesters) -> str:
    parts: list[str] = []
    if requesters.service_accounts:
        accounts = [f"{account.namespace}/{account.name}" for account in requesters.service_accounts]
        parts.append(f"serviceAccounts {_join(accounts)}")
    if requesters.users:
        parts.append(f"users {_join(requesters.users)}")
    if requesters.groups:
        parts.append(f"groups {_join(requesters.groups)}")
    return "; ".join(parts)


def _describe_oidc_entry(entry: OIDCRequester) -> str:
    parts: list[str] = []
    if entry.subjects:
        parts.append(f"subjects {_join(entry.subjects)}")
    if entry.groups:
        parts.append(f"groups {_join(entry.groups)}")
    return "; ".join(parts) or "nobody (the entry names no subjects or groups)"


def _kubernetes_reason(policy_name: str, requesters: Requesters, requester: RequesterStamp) -> str:
    who = f"requester '{requester.username}'"
    if requester.groups:
        who += f" (groups: {_join(requester.groups)})"
    allowed = _describe_kubernetes(requesters)
    if not allowed:
        issuers = _join([entry.issuer for entry in requesters.oidc])
        return (
            f"{who} is not among the requesters of policy {policy_name} "
            f"(it accepts only OIDC tokens from {issuers})"
        )
    return f"{who} is not among the requesters of policy {policy_name} (allowed: {allowed})"


def _oidc_reason(policy_name: str, requesters: Requesters, requester: RequesterStamp) -> str:
    if not requester.issuer or not requester.subject:
        return (
            f"the OIDC proof of requester '{requester.username}' has no issuer or subject, "
            "so it matches no policy"
        )
    entries = [entry for entry in requesters.oidc if entry.issuer == requester.issuer]
    if not entries:
        if requesters.oidc:
            allowed = f"allowed issuers: {_join([entry.issuer for entry in requesters.oidc])}"
        else:
            allowed = f"it accepts only Kubernetes identities: {_describe_kubernetes(requesters)}"
        return f"OIDC issuer '{requester.issuer}' is not trusted by policy {policy_name} ({allowed})"
    who = f"OIDC subject '{requester.subject}' of issuer '{requester.issuer}'"
    if requester.groups:
        who += f" (groups: {_join(requester.groups)})"
    allowed = " | ".join(_describe_oidc_entry(entry) for entry in entries)
    return f"{who} is not among the requesters of policy {policy_name} (allowed for this issuer: {allowed})"


def requester_matches(requesters: Requesters, requester: RequesterStamp) -> bool:
    """Whether the stamped identity is one of the policy's requesters."""
    if requester.proven_by is ProofKind.OIDC:
        return bool(requester.issuer and requester.subject) and any(
            entry.issuer == requester.issuer and _oidc_entry_matches(entry, requester)
            for entry in requesters.oidc
        )
    return _kubernetes_matches(requesters, requester)


def requester_reason(*, policy_name: str, requesters: Requesters, requester: RequesterStamp) -> str | None:
    """None when the requester belongs to the policy, else why not and who would be allowed."""
    if requester_matches(requesters, requester):
        return None
    if requester.proven_by is ProofKind.OIDC:
        return _oidc_reason(policy_name, requesters, requester)
    return _kubernetes_reason(policy_name, requesters, requester)
