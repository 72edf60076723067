"""One error family for everything the client reports, keyed by what the caller does about it.

Every error carries a `Reason` (the same enum the operator writes into status), so an agent branches on
`error.reason`, never on the message. The message says what was refused and what to do next.
"""

from __future__ import annotations

from jitgrant.models import AccessRequest, Phase
from jitgrant.models.vocabulary import Reason


class JitgrantError(Exception):
    """Base of every error the client raises."""

    def __init__(self, message: str, *, reason: Reason | str, request: AccessRequest | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = Reason(reason) if reason in Reason._value2member_map_ else reason
        self.request = request

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class InvalidRequest(JitgrantError, ValueError):
    """An argument cannot make a valid request: nothing was sent. Names the field, what was given,
    what is accepted and an example. Also a ValueError, for code written before it existed."""

    def __init__(self, *, field: str, given: object, accepted: str, example: str) -> None:
        self.field, self.given, self.accepted, self.example = field, given, accepted, example
        super().__init__(
            f"{field}: got {_shown(given)}; accepted: {accepted}; e.g. {example}",
            reason=Reason.INVALID_REQUEST,
        )


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


class AccessDenied(JitgrantError):
    """The policy or an approver refused the request (phase Denied, or a dry run that would be)."""


class AccessTimedOut(JitgrantError):
    """Nobody decided within the policy's pendingTimeout, or the caller's own wait bound passed first
    (reason WaitTimeout: the request stays filed and can be waited on again)."""


class AccessFailed(JitgrantError):
    """The operator could not issue the grant (audit unavailable, cluster refused, ...)."""


class AccessEnded(JitgrantError):
    """The request was revoked, released, expired or deleted before it could be used."""


class NotYourRequest(JitgrantError):
    """The request belongs to another identity: this client never shows, waits on or releases it."""


class RequestNotFound(JitgrantError):
    """No such AccessRequest (or it was deleted)."""


class ApiRefused(JitgrantError):
    """The API server (RBAC, a webhook, validation) refused the call; the message is the server's."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        reason: Reason | str = Reason.API_REFUSED,
        status_reason: str = "",
    ) -> None:
        super().__init__(message, reason=reason)
        self.status = status
        # The API server's Status.reason (AlreadyExists, Forbidden, ...); empty for a webhook's refusal.
        self.status_reason = status_reason


def ending_words(request: AccessRequest) -> str:
    """How a terminal phase reads to someone who was waiting: "denied", "released by its requester"."""
    phase = request.status.phase
    if request.status.reason == Reason.RELEASED:
        return "released by its requester"
    return ENDING_WORDS.get(phase, str(phase)) if phase is not None else "ended"


ENDING_WORDS = {
    Phase.DENIED: "denied",
    Phase.TIMED_OUT: "timed out",
    Phase.FAILED: "failed",
    Phase.EXPIRED: "expired before it could be used",
    Phase.REVOKED: "revoked before it could be used",
    Phase.APPLIED: "an extension, applied to the grant it extends (wait on that grant)",
}


class ApiUnreachable(JitgrantError):
    """The API server could not be reached (network, TLS)."""


class ActivityUnavailable(JitgrantError):
    """What a grant was used for cannot be shown: the request never had a grant (reason NoGrant), or
    the audit log could not be read (reason ActivityUnavailable; the message says why and the fix)."""
