"""GrantPolicy: the platform team's statement of who may get which access, for how long."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from jitgrant.models.base import Duration, WireModel, parse_duration
from jitgrant.models.rbac import DenyRule, PolicyRule
from jitgrant.models.vocabulary import NotifyEvent

# Groups the API server puts every caller of a kind into: naming one as a requester admits everyone
# (every user, every ServiceAccount in any namespace, or anyone at all), so it takes an opt-in.
EVERYONE_GROUPS: frozenset[str] = frozenset(
    {"system:authenticated", "system:unauthenticated", "system:serviceaccounts"}
)
ANONYMOUS_USER = "system:anonymous"
SYSTEM_PREFIX = "system:"
SYSTEM_GROUPS_OPT_IN = "dangerouslyAllowSystemGroups"
SYSTEM_CLAIMS_OPT_IN = "dangerouslyAllowSystemClaims"

# RFC 1123 label: what the API server accepts as a namespace name.
NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class ServiceAccountRef(WireModel):
    """A ServiceAccount by namespace and name (authenticated as system:serviceaccount:NS:NAME)."""

    namespace: str = Field(min_length=1, description="Namespace of the ServiceAccount.")
    name: str = Field(min_length=1, description="Name of the ServiceAccount.")

    @property
    def username(self) -> str:
        """The name the API server authenticates this ServiceAccount as."""
        return f"system:serviceaccount:{self.namespace}:{self.name}"


# What mainstream identity providers sign with (Okta, Entra ID, Google, Keycloak, Auth0, Hydra):
# every asymmetric JWS algorithm. `none` and HMAC (HS*) are never accepted, whatever a policy lists.
DEFAULT_OIDC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


class CABundleRef(WireModel):
    """A PEM bundle in the operator's namespace, trusted for one issuer *in addition to* the system
    roots (an IdP behind a private CA), from a ConfigMap or a Secret."""

    config_map: str | None = Field(default=None, description="ConfigMap in the operator's namespace.")
    secret: str | None = Field(default=None, description="Secret in the operator's namespace.")
    key: str = Field(default="ca.crt", min_length=1, description="The key holding the PEM bundle.")

    @model_validator(mode="after")
    def _one_source(self) -> CABundleRef:
        if (self.config_map is None) == (self.secret is None):
            raise ValueError(
                "caBundle names exactly one of configMap or secret (a name in the operator's namespace)"
            )
        return self

    @property
    def source(self) -> str:
        return f"ConfigMap {self.config_map}" if self.config_map else f"Secret {self.secret}"


class OIDCRequester(WireModel):
    """External agents proving themselves with an OIDC token (an ID token, or a JWT access token of a
    machine client) from this issuer."""

    issuer: str = Field(min_length=1, description="Exact `iss` claim and base of the discovery document.")
    audience: str = Field(min_length=1, description="The `aud` the token must carry.")
    subjects: tuple[str, ...] = Field(default=(), description="Token `sub` claims allowed to request.")
    groups: tuple[str, ...] = Field(
        default=(), description="Groups (from groupsClaim) allowed to request; any one suffices."
    )
    groups_claim: str = Field(default="groups", description="The token claim holding the caller's groups.")
    algorithms: tuple[str, ...] = Field(
        default=DEFAULT_OIDC_ALGORITHMS,
        description="Signature algorithms accepted (default: RS, PS and ES 256/384/512 and EdDSA; "
        "never none or HS*).",
    )
    ca_bundle: CABundleRef | None = Field(
        default=None,
        description="Extra CA certificates for this issuer's TLS, added to the system roots.",
    )
    dangerously_allow_system_claims: bool = Field(
        default=False,
        description="Accept subjects and groups starting with 'system:' (Kubernetes' reserved prefix).",
    )

    @model_validator(mode="after")
    def _no_system_names(self) -> OIDCRequester:
        named = [item for item in (*self.subjects, *self.groups) if item.startswith(SYSTEM_PREFIX)]
        if named and not self.dangerously_allow_system_claims:
            raise ValueError(
                f"subjects/groups {', '.join(named)} use Kubernetes' reserved 'system:' prefix, and tokens "
                f"carrying such claims are refused; set {SYSTEM_CLAIMS_OPT_IN}: true to mean it"
            )
        return self


class Requesters(WireModel):
    """Who may file requests under this policy; the identity comes from authentication, never the spec."""

    service_accounts: tuple[ServiceAccountRef, ...] = Field(
        default=(), description="ServiceAccounts (agents in the cluster) allowed to request."
    )
    users: tuple[str, ...] = Field(default=(), description="Usernames allowed to request.")
    groups: tuple[str, ...] = Field(default=(), description="Groups whose members may request.")
    oidc: tuple[OIDCRequester, ...] = Field(
        default=(), description="External agents proving themselves with an OIDC ID token."
    )
    dangerously_allow_system_groups: bool = Field(
        default=False,
        description=(
            "Let groups name system:authenticated, system:unauthenticated or system:serviceaccounts "
            "(and users name system:anonymous): each admits every caller of its kind."
        ),
    )

    @model_validator(mode="after")
    def _someone(self) -> Requesters:
        if not (self.service_accounts or self.users or self.groups or self.oidc):
            raise ValueError("requesters names nobody: list serviceAccounts, users, groups or oidc issuers")
        everyone = [group for group in self.groups if group in EVERYONE_GROUPS]
        everyone += [user for user in self.users if user == ANONYMOUS_USER]
        if everyone and not self.dangerously_allow_system_groups:
            raise ValueError(
                f"requesters name {', '.join(everyone)}, which matches every caller of its kind, not one "
                f"agent; name ServiceAccounts, users or narrower groups (or set {SYSTEM_GROUPS_OPT_IN}: "
                "true if everyone is meant)"
            )
        return self


IN_CLUSTER = "in-cluster"


def cluster_name_of(cluster: str) -> str:
    """The bare name in a cluster identity (`arn:...:cluster/NAME` -> NAME; anything else as is)."""
    return cluster.rpartition("/")[2] if cluster.startswith("arn:") else cluster


class TargetType(StrEnum):
    IN_CLUSTER = "InCluster"
    EKS = "EKS"


class EKSTarget(WireModel):
    """An EKS cluster reached through an assumed IAM role."""

    cluster_name: str = Field(min_length=1, description="Name of the EKS cluster.")
    region: str = Field(min_length=1, description="AWS region of the cluster, e.g. eu-west-1.")
    role_arn: str = Field(
        pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$",
        description="IAM role the operator assumes to grant in this cluster.",
    )
    external_id: str | None = Field(
        default=None, description="sts:ExternalId the role's trust policy demands."
    )

    @property
    def partition(self) -> str:
        """The AWS partition (aws, aws-cn, aws-us-gov), from the role's ARN."""
        return self.role_arn.split(":")[1]

    @property
    def account(self) -> str:
        """The cluster's account: the role's (an EKS access entry maps a role of the cluster's account)."""
        return self.role_arn.split(":")[4]

    @property
    def arn(self) -> str:
        """The cluster's identity: two clusters of one name in two regions or accounts differ here."""
        return f"arn:{self.partition}:eks:{self.region}:{self.account}:cluster/{self.cluster_name}"


class Target(WireModel):
    """Where grants are made: the operator's own cluster, or an EKS cluster."""

    type: TargetType = Field(
        default=TargetType.IN_CLUSTER, description="InCluster (the default) or EKS (then set eks)."
    )
    eks: EKSTarget | None = Field(default=None, description="The EKS cluster, with type EKS.")

    @model_validator(mode="after")
    def _eks_needs_details(self) -> Target:
        if self.type is TargetType.EKS and self.eks is None:
            raise ValueError("target.type EKS needs target.eks (clusterName, region, roleArn)")
        if self.type is TargetType.IN_CLUSTER and self.eks is not None:
            raise ValueError("target.eks is only meaningful with target.type EKS")
        return self

    @property
    def cluster(self) -> str:
        """The target's identity, which every connection, session, sweep, seal, metric label, audit
        record and grant record is keyed by: the cluster ARN for EKS (a name alone is not unique
        across regions and accounts), `in-cluster` for the operator's own."""
        return self.eks.arn if self.eks is not None else IN_CLUSTER

    @property
    def cluster_name(self) -> str:
        """The bare cluster name, for messages only (never a key)."""
        return self.eks.cluster_name if self.eks is not None else IN_CLUSTER


class GrantOption(WireModel):
    """One thing a request may ask for: a ClusterRole by name, or a set of inline rules."""

    cluster_role: str | None = Field(
        default=None,
        min_length=1,
        description="A ClusterRole requests may name; bound by a RoleBinding in the grant's namespace.",
    )
    rules: tuple[PolicyRule, ...] | None = Field(
        default=None, min_length=1, description="Inline rules; a request may ask for any subset."
    )
    accept_dangerous: tuple[str, ...] = Field(
        default=(),
        description=(
            "With clusterRole: the dangerous entries (e.g. secrets, pods/exec, escalate, *) its live rules "
            "may hold. Any other dangerous permission found in the ClusterRole at grant time refuses the "
            "grant (ClusterRoleWidened). Inline rules opt in by naming the entry literally instead."
        ),
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> GrantOption:
        if (self.cluster_role is None) == (self.rules is None):
            raise ValueError("each grants entry needs exactly one of clusterRole or rules")
        if self.accept_dangerous and self.rules is not None:
            raise ValueError(
                "acceptDangerous is only for a clusterRole entry; inline rules opt in to a dangerous "
                "permission by naming it literally in the rule"
            )
        return self


class Approvers(WireModel):
    """Who may approve or deny; never the requester."""

    users: tuple[str, ...] = Field(default=(), description="Usernames that may decide.")
    groups: tuple[str, ...] = Field(default=(), description="Groups whose members may decide.")


class ApprovalPolicy(WireModel):
    """Whether people must approve, who, and how many."""

    required: bool = Field(default=False, description="false: auto-approve; true: wait for approvers.")
    approvers: Approvers = Field(default=Approvers(), description="Who may approve or deny.")
    min_approvals: int = Field(default=1, ge=1, le=10, description="Distinct approvers needed (1-10).")
    pending_timeout: Duration = Field(
        default="30m", description="How long a request waits for approval before it is TimedOut."
    )
    reason_required: bool = Field(
        default=False,
        description="true: an approval without a reason (empty or whitespace) is refused by the webhook.",
    )
    min_reason_length: int = Field(
        default=0,
        ge=0,
        le=1024,
        description="Fewest characters (whitespace trimmed) an approval's reason must have (0-1024).",
    )

    @property
    def reason_floor(self) -> int:
        """Characters an approval's reason needs: 0 when none is required."""
        return max(self.min_reason_length, 1 if self.reason_required else 0)

    @model_validator(mode="after")
    def _approvers_named(self) -> ApprovalPolicy:
        if self.required and not (self.approvers.users or self.approvers.groups):
            raise ValueError("approval.required needs approval.approvers (users or groups)")
        users = set(self.approvers.users)
        if self.required and not self.approvers.groups and self.min_approvals > len(users):
            raise ValueError(
                f"approval.minApprovals {self.min_approvals} can never be reached: approvers names only "
                f"{len(users)} user(s) and no groups (name more approvers or lower minApprovals)"
            )
        return self

    @property
    def pending_timeout_delta(self) -> timedelta:
        return parse_duration(self.pending_timeout)


class JustificationPolicy(WireModel):
    """What a request's justification must say."""

    required: bool = Field(default=False, description="Refuse requests with an empty justification.")
    pattern: str | None = Field(default=None, description="Regular expression the justification must match.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"pattern {value!r} is not a valid regular expression ({error})") from error
        return value


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelectorRequirement(WireModel):
    """One of a LabelSelector's matchExpressions, as Kubernetes defines it."""

    key: str = Field(min_length=1, description="The label key.")
    operator: SelectorOperator = Field(description="In, NotIn, Exists or DoesNotExist.")
    values: tuple[str, ...] = Field(
        default=(), description="With In and NotIn: at least one value; with Exists and DoesNotExist: none."
    )

    @model_validator(mode="after")
    def _values_fit_operator(self) -> LabelSelectorRequirement:
        needs = self.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
        if needs and not self.values:
            raise ValueError(f"matchExpressions key {self.key!r}: operator {self.operator} needs values")
        if not needs and self.values:
            raise ValueError(f"matchExpressions key {self.key!r}: operator {self.operator} takes no values")
        return self


class LabelSelector(WireModel):
    """A Kubernetes LabelSelector: every matchLabels pair and every matchExpressions requirement must
    hold. An empty selector would select every namespace, so at least one of the two is required."""

    match_labels: dict[str, str] = Field(default_factory=dict, description="Labels the namespace must carry.")
    match_expressions: tuple[LabelSelectorRequirement, ...] = Field(
        default=(), description="Requirements on the namespace's labels."
    )

    @model_validator(mode="after")
    def _selects_something(self) -> LabelSelector:
        if not self.match_labels and not self.match_expressions:
            raise ValueError(
                "namespaceSelector is empty and would select every namespace; write matchLabels or "
                'matchExpressions (or namespaces: ["*"] if every non-system namespace is meant)'
            )
        return self

    def describe(self) -> str:
        """The selector as kubectl's -l would write it."""
        parts = [f"{key}={value}" for key, value in sorted(self.match_labels.items())]
        for item in self.match_expressions:
            if item.operator is SelectorOperator.EXISTS:
                parts.append(item.key)
            elif item.operator is SelectorOperator.DOES_NOT_EXIST:
                parts.append(f"!{item.key}")
            else:
                word = "in" if item.operator is SelectorOperator.IN else "notin"
                parts.append(f"{item.key} {word} ({','.join(item.values)})")
        return ",".join(parts)


class RequestLimits(WireModel):
    """Caps per requester under this policy (issue 31): refused at admission with AlreadyRequested or
    LimitReached."""

    one_open_per_scope: bool = Field(
        default=True,
        description="true: a requester may have one open request per namespace and role or rules under "
        "this policy, and a second is refused as AlreadyRequested (false: for load tests and fan-out).",
    )

    max_open_per_requester: int | None = Field(
        default=None, ge=1, le=1000, description="Most open (not yet ended) requests one requester may have."
    )
    max_requests_per_hour: int | None = Field(
        default=None, ge=1, le=10000, description="Most requests one requester may file in any hour."
    )


class PolicyNotifications(WireModel):
    """Which notifications this policy's requests send, overriding the operator's default (issue 31
    §6): page on break-glass, stay quiet on auto-approved reads."""

    notifiers: tuple[str, ...] | None = Field(
        default=None,
        description="Names of the operator's notifiers (the chart's notifications.notifiers[].name) to "
        "use; [] sends none; unset: every notifier.",
    )
    events: tuple[NotifyEvent, ...] | None = Field(
        default=None,
        description="Events to send (pending, decided, active, expired, revoked, failed), instead of each "
        "notifier's own list; unset: each notifier's events.",
    )


class ExtensionPolicy(WireModel):
    """Whether the requester of an Active grant may extend it (issue 25 section 1), how often, by how
    much in total, and when an extension needs the policy's approvers (docs/identity-and-approvals.md,
    "Extending an active grant"). Off by default: a grant's window is what was approved."""

    allowed: bool = Field(default=False, description="true: the requester may ask to extend an Active grant.")
    max_count: int = Field(default=1, ge=1, le=20, description="Extensions one grant may receive (1-20).")
    max_total_duration: Duration = Field(
        default="15m", description="Longest total all extensions of one grant may add together."
    )
    auto_approve_up_to: Duration | None = Field(
        default=None,
        description="Under a policy that requires approval: extensions whose running total stays "
        "within this are approved without a human; past it they wait for the policy's approvers "
        "(default: every extension waits).",
    )

    @property
    def max_total_delta(self) -> timedelta:
        return parse_duration(self.max_total_duration)

    @property
    def auto_approve_delta(self) -> timedelta:
        return parse_duration(self.auto_approve_up_to) if self.auto_approve_up_to else timedelta(0)


class GrantPolicySpec(WireModel):
    requesters: Requesters = Field(description="Who may request under this policy.")
    target: Target = Field(default=Target(), description="Where grants are made (default: this cluster).")
    namespaces: tuple[str, ...] = Field(
        default=(),
        description='Namespaces grants may land in; "*" is any namespace except system ones. Set this, '
        "namespaceSelector, or both.",
    )
    namespace_selector: LabelSelector | None = Field(
        default=None,
        description="Namespaces grants may land in, by their live labels (checked at request and again at "
        "activation and while the grant lasts: a label removed ends it, PolicyChanged). System namespaces "
        "are never selected; list one by name in namespaces to allow it. InCluster targets only.",
    )
    grants: tuple[GrantOption, ...] = Field(min_length=1, description="What requests may ask for.")
    max_duration: Duration = Field(default="15m", description="Longest grant a request may ask for.")
    default_duration: Duration | None = Field(
        default=None, description="Duration of a request that names none (default: maxDuration)."
    )
    idle_timeout: Duration | None = Field(
        default=None,
        description="End a grant whose identity made no API call for this long (reason Idle), judged "
        "from the target cluster's audit log (the operator's activity source for it; a policy with "
        "idleTimeout where none is configured is refused at apply).",
    )
    min_duration: Duration | None = Field(
        default=None,
        description="Shortest grant a request may ask for; equal to maxDuration for a fixed duration.",
    )
    approval: ApprovalPolicy = Field(
        default=ApprovalPolicy(), description="Approval rules (default: none required)."
    )
    justification: JustificationPolicy = Field(
        default=JustificationPolicy(), description="Rules for the request's justification."
    )
    limits: RequestLimits = Field(
        default=RequestLimits(), description="Caps and rates per requester (default: none)."
    )
    notifications: PolicyNotifications | None = Field(
        default=None,
        description="Which notifiers and events this policy's requests use (default: the operator's).",
    )
    deny: tuple[DenyRule, ...] = Field(
        default=(),
        description="Permissions no grant under this policy may carry, whatever its ClusterRoles hold: a "
        "ClusterRole or inline rule including one is refused at apply and again at grant time against "
        "its live rules (DenyRuleMatched). The operator's cluster-wide deny rules apply as well.",
    )
    extensions: ExtensionPolicy = Field(
        default=ExtensionPolicy(),
        description="Whether and how far an Active grant may be extended (default: never).",
    )

    @field_validator("namespaces")
    @classmethod
    def _namespace_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [entry for entry in value if entry != "*" and not NAMESPACE_NAME.fullmatch(entry)]
        if bad:
            raise ValueError(
                f"namespaces {', '.join(repr(entry) for entry in bad)} are not namespace names "
                '(names do not glob; write a name, or "*" for any non-system namespace)'
            )
        return value

    @model_validator(mode="after")
    def _somewhere(self) -> GrantPolicySpec:
        if not self.namespaces and self.namespace_selector is None:
            raise ValueError(
                'names no namespace: set namespaces (names, or "*") or namespaceSelector (by labels)'
            )
        if self.namespace_selector is not None and self.target.type is not TargetType.IN_CLUSTER:
            raise ValueError(
                "namespaceSelector is matched against the operator's own cluster's Namespaces; with "
                "target.type EKS list the namespaces by name"
            )
        return self

    @model_validator(mode="after")
    def _default_within_max(self) -> GrantPolicySpec:
        if self.default_duration is not None and self.default_duration_delta > self.max_duration_delta:
            raise ValueError(
                f"defaultDuration {self.default_duration} is longer than maxDuration {self.max_duration}"
            )
        if self.min_duration is not None:
            if self.min_duration_delta > self.max_duration_delta:
                raise ValueError(
                    f"minDuration {self.min_duration} is longer than maxDuration {self.max_duration} "
                    "(for a fixed duration set both to the same value)"
                )
            if self.min_duration_delta > self.default_duration_delta:
                raise ValueError(
                    f"minDuration {self.min_duration} is longer than defaultDuration "
                    f"{self.default_duration or self.max_duration}, so a request naming no duration "
                    "would be refused (raise defaultDuration or lower minDuration)"
                )
        return self

    @property
    def idle_timeout_delta(self) -> timedelta | None:
        return parse_duration(self.idle_timeout) if self.idle_timeout is not None else None

    @property
    def min_duration_delta(self) -> timedelta:
        return parse_duration(self.min_duration) if self.min_duration is not None else timedelta(0)

    @property
    def max_duration_delta(self) -> timedelta:
        return parse_duration(self.max_duration)

    @property
    def default_duration_delta(self) -> timedelta:
        return parse_duration(self.default_duration or self.max_duration)


class ObjectMeta(WireModel):
    """The part of metadata the models read; the rest of a live object is ignored."""

    model_config = WireModel.model_config | {"extra": "ignore"}
    name: str
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class PolicyCondition(WireModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: datetime


class GrantPolicyStatus(WireModel):
    """Written by the operator only: whether requests under this policy can be granted as written."""

    model_config = WireModel.model_config | {"extra": "ignore"}
    observed_generation: int | None = None
    conditions: tuple[PolicyCondition, ...] = ()


class GrantPolicy(WireModel):
    model_config = WireModel.model_config | {"extra": "ignore"}
    api_version: Literal["jitgrant.dev/v1alpha1"] = "jitgrant.dev/v1alpha1"
    kind: Literal["GrantPolicy"] = "GrantPolicy"
    metadata: ObjectMeta
    spec: GrantPolicySpec
    status: GrantPolicyStatus = GrantPolicyStatus()

    @classmethod
    def from_object(cls, body: Any) -> GrantPolicy:
        return cls.model_validate(dict(body))
