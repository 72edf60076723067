"""Every name jitgrant writes onto objects, and every reason it gives: defined once, here.

Clients (the CLI, the Python client, the MCP server, dashboards) match on these values, never on
status messages. A reason is part of the API, like cert-manager's reason constants: add new ones,
never rename one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from jitgrant.models.base import API_GROUP

# --- Annotations a person or agent writes on an AccessRequest (the webhooks check each). ---
APPROVE_ANNOTATION: Final = f"{API_GROUP}/approve"
DENY_ANNOTATION: Final = f"{API_GROUP}/deny"
REVOKE_ANNOTATION: Final = f"{API_GROUP}/revoke"
# The requester ending its own grant early (the webhook lets only the requester set it).
RELEASE_ANNOTATION: Final = f"{API_GROUP}/release"
OIDC_TOKEN_ANNOTATION: Final = f"{API_GROUP}/oidc-token"

# --- Annotations only the operator's webhooks write. ---
APPROVALS_ANNOTATION: Final = f"{API_GROUP}/approvals"
REQUESTER_SEAL_ANNOTATION: Final = f"{API_GROUP}/requester-seal"
# Who set jitgrant.dev/revoke, stamped by the mutating webhook from userInfo and sealed like a receipt.
REVOKED_BY_ANNOTATION: Final = f"{API_GROUP}/revoked-by"
# Who deleted the request, stamped and sealed by the webhook on DELETE (record-deletion) and read by
# the finalizer, so the `revoked` record of a deletion names the deleter (or the garbage collector
# and the owner it followed).
DELETED_BY_ANNOTATION: Final = f"{API_GROUP}/deleted-by"

# --- Labels and annotations on the objects of a grant. Labels select; they never prove ownership. ---
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "jitgrant"
MANAGED_SELECTOR: Final = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
REQUEST_UID_LABEL: Final = f"{API_GROUP}/request-uid"
REQUEST_ANNOTATION: Final = f"{API_GROUP}/request"
EXPIRES_AT_ANNOTATION: Final = f"{API_GROUP}/expires-at"
# The operator's HMAC over (cluster, kind, namespace, name, request uid): the proof that the operator
# made the object. Labels anyone may write; this only the holder of the operator's key can.
OWNER_SEAL_ANNOTATION: Final = f"{API_GROUP}/owner-seal"

# --- Other fixed names. ---
# On the Leases that record used OIDC tokens (the replay set every replica shares).
REPLAY_LABEL: Final = f"{API_GROUP}/replay"
FINALIZER: Final = f"{API_GROUP}/revoke-grant"
# `jitgrant identity refresh`: a Lease in the operator's namespace whose annotations are refresh
# marks, one for every issuer (`all`) and one per issuer (`issuer-<sha256 of the URL, 16 hex>`). Each
# replica reads them before using cached IdP keys and fetches the keys again when a mark changed.
IDENTITY_REFRESH_LEASE: Final = "jitgrant-identity-refresh"
IDENTITY_REFRESH_PREFIX: Final = f"identity-refresh.{API_GROUP}/"
CREATED_BY_EXTRA: Final = f"{API_GROUP}/created-by"
# kube-controller-manager's garbage collector, as the API server authenticates it when the controller
# manager runs with --use-service-account-credentials (the default of kubeadm and managed services).
GARBAGE_COLLECTOR_USERNAME: Final = "system:serviceaccount:kube-system:generic-garbage-collector"
LAST_APPLIED_ANNOTATION: Final = "kubectl.kubernetes.io/last-applied-configuration"
# The GrantPolicy condition the operator writes: valid, ClusterRoles bindable and as accepted.
READY_CONDITION: Final = "Ready"
# The AccessRequest condition that is True while an ended grant's removal from its cluster is late.
REMOVAL_OVERDUE_CONDITION: Final = "RemovalOverdue"
# Prefix of the admission warnings (allowed, pending) and the refusal (denied) of a dryRun create.
DRY_RUN_WARNING: Final = f"{API_GROUP}/dry-run"
# In an AlreadyRequested refusal: `jitgrant.dev/existing-request: <namespace>/<name>`, the open request
# the new one duplicates, so a client finds it without parsing the prose around it.
EXISTING_REQUEST_MARKER: Final = f"{API_GROUP}/existing-request"


class NotifyEvent(StrEnum):
    """What a notifier posts about (the chart's notifiers[].events, a policy's spec.notifications)."""

    PENDING = "pending"  # waiting for approvers: the message carries the approve/deny commands
    DECIDED = "decided"  # approved (by people or by policy), denied, or timed out
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"  # revoked, released by the requester, or deleted
    FAILED = "failed"


class Reason(StrEnum):
    """Why a request is where it is: `status.reason`, the Event reason and the audit record's reason."""

    # The request's decisions.
    AWAITING_APPROVAL = "AwaitingApproval"
    AUTO_APPROVED = "AutoApproved"
    APPROVED = "Approved"
    APPROVAL_RECORDED = "ApprovalRecorded"
    DENIED_BY_APPROVER = "DeniedByApprover"
    POLICY_NOT_FOUND = "PolicyNotFound"
    POLICY_REFUSED = "PolicyRefused"
    REQUESTER_NOT_VERIFIED = "RequesterNotVerified"
    INVALID_REQUEST = "InvalidRequest"
    PENDING_TIMEOUT = "PendingTimeout"
    POLICY_INVALID = "PolicyInvalid"
    CLUSTER_ROLE_WIDENED = "ClusterRoleWidened"
    # A ClusterRole's (live) or inline rules include a permission a deny rule forbids (issue 31 §5).
    DENY_RULE_MATCHED = "DenyRuleMatched"
    # The policy's Ready condition is False: no request is filed under it (refused at admission).
    POLICY_NOT_READY = "PolicyNotReady"
    # Guardrails (issue 31): the requester already has an open request for this scope.
    ALREADY_REQUESTED = "AlreadyRequested"
    # ... or is past the policy's spec.limits (open requests, or requests per hour).
    LIMIT_REACHED = "LimitReached"
    # The policy changed (narrowed, deleted, an approver removed) under a live request: continuous
    # authorization ended it, denied it at activation, or shortened its window.
    POLICY_CHANGED = "PolicyChanged"
    # Extensions (spec.extends): refused at admission or by the reconciler, or applied to the grant.
    EXTENSION_REFUSED = "ExtensionRefused"
    EXTENSION_APPLIED = "ExtensionApplied"
    EXTENDED = "Extended"  # on the original grant: its expiresAt moved later
    # The grant.
    GRANTED = "Granted"
    EXPIRED = "Expired"
    REVOKED = "Revoked"
    RELEASED = "Released"  # ended early by its own requester, not by an approver
    IDLE = "Idle"  # ended because its identity made no API call for the policy's idleTimeout
    DELETED = "Deleted"
    # A finished request deleted by the operator once `finishedRetention` had passed since it ended.
    RETENTION_ELAPSED = "RetentionElapsed"
    NAME_COLLISION = "NameCollision"  # an object the operator did not make holds a name of the grant
    ISSUING = "Issuing"  # the grant plan is recorded; its objects are being created
    NAMESPACE_NOT_FOUND = "NamespaceNotFound"  # the target namespace did not appear in time
    WAITING_FOR_NAMESPACE = "WaitingForNamespace"  # the target namespace is missing; retrying a while
    GRANT_REFUSED_BY_CLUSTER = "GrantRefusedByCluster"
    AUDIT_UNAVAILABLE = "AuditUnavailable"
    # Target clusters.
    CLUSTER_FORBIDDEN = "ClusterForbidden"
    CLUSTER_REQUEST_REFUSED = "ClusterRequestRefused"
    CLUSTER_TLS_FAILURE = "ClusterTLSFailure"
    CLUSTER_UNAUTHORIZED = "ClusterUnauthorized"
    CLUSTER_UNAVAILABLE = "ClusterUnavailable"
    CLUSTER_UNREACHABLE = "ClusterUnreachable"
    CLUSTER_OBJECT_NOT_FOUND = "ClusterObjectNotFound"
    CLUSTER_CONFLICT = "ClusterConflict"
    TARGET_UNAVAILABLE = "TargetUnavailable"
    # The grant's window closed before its cluster could be reached: it ends Failed, nothing granted.
    TARGET_UNREACHABLE = "TargetUnreachable"
    # An ended grant whose objects could not yet be removed from its cluster (also a condition type).
    REMOVAL_OVERDUE = "RemovalOverdue"
    # AWS and EKS.
    AWS_CLIENT_ERROR = "AWSClientError"
    AWS_CREDENTIALS_EXPIRED = "AWSCredentialsExpired"
    AWS_REQUEST_REFUSED = "AWSRequestRefused"
    AWS_THROTTLED = "AWSThrottled"
    AWS_UNAVAILABLE = "AWSUnavailable"
    AWS_UNREACHABLE = "AWSUnreachable"
    EKS_ACCESS_DENIED = "EKSAccessDenied"
    EKS_CLUSTER_NOT_FOUND = "EKSClusterNotFound"
    EKS_CLUSTER_NOT_READY = "EKSClusterNotReady"
    EKS_NOT_CONFIGURED = "EKSNotConfigured"
    INVALID_CLUSTER_CA = "InvalidClusterCA"
    OPERATOR_CREDENTIALS_MISSING = "OperatorCredentialsMissing"
    ROLE_ASSUMPTION_DENIED = "RoleAssumptionDenied"
    STS_REGION_DISABLED = "STSRegionDisabled"
    # What the Python client and the MCP server report (never written by the operator).
    WAIT_TIMEOUT = "WaitTimeout"
    REQUEST_NOT_FOUND = "RequestNotFound"
    NOT_REQUESTER = "NotRequester"
    API_REFUSED = "APIRefused"
    API_UNREACHABLE = "APIUnreachable"
    NO_GRANT = "NoGrant"  # activity asked of a request that never had a grant
    ACTIVITY_UNAVAILABLE = "ActivityUnavailable"  # no audit log source, or it could not be read
    # A GrantPolicy's Ready condition (status written by the operator).
    POLICY_READY = "PolicyReady"
    CLUSTER_ROLE_NOT_FOUND = "ClusterRoleNotFound"
    CLUSTER_ROLE_NOT_BINDABLE = "ClusterRoleNotBindable"
    ISSUER_MISMATCH = "IssuerMismatch"  # the IdP's discovery document names itself otherwise
    ISSUER_UNAVAILABLE = "IssuerUnavailable"  # the IdP's discovery document could not be fetched


class EventType(StrEnum):
    """The type of an audit record (`audit.records.AuditEvent.type`), one per kind of transition."""

    REQUESTED = "requested"
    DENIED = "denied"
    PENDING = "pending"
    APPROVAL_RECORDED = "approval-recorded"
    APPROVED = "approved"
    ISSUING = "issuing"  # the grant's objects are about to be created (accepted before they exist)
    GRANTED = "granted"  # they exist and the request is Active
    SHORTENED = "shortened"  # its policy's maxDuration was cut: expiresAt moved earlier
    EXTENDED = "extended"  # an approved extension moved expiresAt later (no new binding)
    EXPIRED = "expired"
    REVOKED = "revoked"
    # The grant's window closed (or it was revoked) and its objects could not be removed: written
    # once, when the removal becomes overdue; the expired/revoked record follows when it is done.
    REMOVAL_OVERDUE = "removal-overdue"
    TIMED_OUT = "timed-out"
    FAILED = "failed"
    CLEANED_UP = "cleaned-up"  # an orphaned binding removed by the sweep
    REMOVED = "removed"  # a finished request deleted after its retention (written before deletion)
    ACTIVITY_SUMMARY = "activity-summary"  # what the grant's identity did, from the API server's audit log
    # Requests a guardrail refused at admission (never stored): one record per requester per minute,
    # its reason saying how many refusals it stands for (identity-and-approvals.md, "Guardrails").
    REFUSED = "refused"


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with second precision and a `Z`: how Kubernetes writes times."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time (`Z` or an offset) into an aware UTC datetime; ValueError if it is not one."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no timezone (expected RFC 3339, e.g. 2026-01-01T00:00:00Z)")
    return value.astimezone(UTC)
