"""`jitgrant policy test`: cases of (identity, request, live ClusterRoles) -> expected outcome.

A case is answered by `lifecycle.dry_run.dry_run_answer`, the function the validating webhook runs
for `kubectl create --dry-run=server` (and `jitgrant check`), with the requester stamped from the
case's identity exactly as the webhook stamps it from the API server's userInfo. Two checks the
webhook's dry run cannot make follow, as the operator makes them: a policy present but invalid denies
as `PolicyInvalid`, and a requested ClusterRole whose live rules hold dangerous permissions the policy
did not accept is refused at grant time as `ClusterRoleWidened`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from jitgrant.identity.claims import (
    VerifiedIdentity,
    issuer_entry,
    oidc_username,
    policy_not_found,
    requester_refusal,
)
from jitgrant.identity.stamp import requester_from_userinfo, stamp_to_wire
from jitgrant.lifecycle.dry_run import DryRunAnswer, Outcome, dry_run_answer
from jitgrant.models import (
    GROUP_VERSION,
    DenyRule,
    GrantPolicySpec,
    PolicyRule,
    RequesterStamp,
    format_duration,
)
from jitgrant.models.base import Duration, WireModel, parse_duration
from jitgrant.models.policy import ServiceAccountRef
from jitgrant.models.vocabulary import Reason
from jitgrant.offline.loader import TEST_KIND, ManifestError, Manifests
from jitgrant.policy import DEFAULT_OPERATOR_NAMESPACE, widened_reason
from jitgrant.policy.deny import grant_deny_reason
from jitgrant.policy.selector import policy_for_namespace

AUTHENTICATED = "system:authenticated"
_NEVER = datetime.max.replace(tzinfo=UTC)  # a verified token's expiry plays no part in the decision


class OIDCIdentity(WireModel):
    """An agent outside the cluster, as its verified token would prove it (the token itself is
    taken as valid: signature, audience and expiry are the IdP's and the verifier's business)."""

    issuer: str = Field(min_length=1)
    subject: str = Field(min_length=1)
    groups: tuple[str, ...] = ()


class Identity(WireModel):
    """Who files the request: a user (with groups) or a ServiceAccount, as the API server would
    authenticate them (system:authenticated, and for a ServiceAccount its namespace's groups), or an
    OIDC agent as its verified token would prove it."""

    user: str | None = Field(default=None, min_length=1)
    service_account: ServiceAccountRef | None = None
    oidc: OIDCIdentity | None = None
    groups: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _one(self) -> Identity:
        if sum(kind is not None for kind in (self.user, self.service_account, self.oidc)) != 1:
            raise ValueError(
                "identity needs exactly one of user, serviceAccount or oidc (groups are optional)"
            )
        if self.oidc is not None and self.groups:
            raise ValueError("an oidc identity's groups go in oidc.groups (the token's groups claim)")
        return self

    def userinfo(self) -> dict[str, Any]:
        """The AdmissionReview userInfo the API server would send for this identity."""
        if self.oidc is not None:
            raise ValueError("an oidc identity is proven by its token, not by the API server's userInfo")
        if self.service_account is not None:
            sa = self.service_account
            groups = ["system:serviceaccounts", f"system:serviceaccounts:{sa.namespace}", AUTHENTICATED]
            return {"username": sa.username, "groups": list(dict.fromkeys([*groups, *self.groups]))}
        return {"username": self.user, "groups": list(dict.fromkeys([*self.groups, AUTHENTICATED]))}

    @property
    def label(self) -> str:
        if self.oidc is not None:
            return oidc_username(issuer=self.oidc.issuer, subject=self.oidc.subject)
        return self.service_account.username if self.service_account is not None else str(self.user)


def _oidc_stamp(
    oidc: OIDCIdentity, *, policy_name: str, policy: GrantPolicySpec | None
) -> RequesterStamp | str:
    """The stamp the mutating webhook writes for a verified token, or why it refuses the token: the
    same pure checks it runs around the signature verification (operator/admission.py)."""
    if policy is None:
        return policy_not_found(policy_name)
    issuer = issuer_entry(policy, policy_name=policy_name, claimed=oidc.issuer)
    if isinstance(issuer, str):
        return issuer
    identity = VerifiedIdentity(
        issuer=oidc.issuer, subject=oidc.subject, groups=oidc.groups, expires_at=_NEVER, replay_key=""
    )
    refusal = requester_refusal(identity, issuer=issuer, policy_name=policy_name)
    return refusal if refusal is not None else identity.to_stamp()


class LiveClusterRole(WireModel):
    """A ClusterRole as the cluster holds it at grant time (overrides one of the same name on file)."""

    name: str = Field(min_length=1)
    rules: tuple[PolicyRule, ...] = ()


class Expectation(WireModel):
    outcome: Outcome
    reason: str | None = Field(default=None, description="e.g. PolicyRefused, AutoApproved.")
    message_contains: tuple[str, ...] = Field(default=(), description="Substrings of the message.")
    approvals: int | None = Field(default=None, ge=1, description="With pending-approval: how many.")
    approver_groups: tuple[str, ...] | None = None
    approver_users: tuple[str, ...] | None = None
    duration: Duration | None = Field(default=None, description="The window it would be granted for.")

    @model_validator(mode="after")
    def _consistent(self) -> Expectation:
        pending_only = self.approvals is not None or self.approver_groups is not None
        if pending_only and self.outcome is not Outcome.PENDING_APPROVAL:
            raise ValueError("approvals/approverGroups are only meaningful with outcome pending-approval")
        return self


class Case(WireModel):
    name: str = Field(min_length=1)
    identity: Identity
    request: dict[str, Any] = Field(description="An AccessRequest spec (policy, namespace, ...).")
    cluster_roles: tuple[LiveClusterRole, ...] = ()
    # The target namespace's labels as the cluster has them, for a policy's namespaceSelector
    # (unset: the namespace has no labels, so only a listed namespace is allowed).
    namespace_labels: dict[str, str] = Field(default_factory=dict)
    expect: Expectation

    @model_validator(mode="after")
    def _no_requester(self) -> Case:
        if "requester" in self.request:
            raise ValueError("request.requester is set by the webhook from identity; remove it")
        return self


class Settings(WireModel):
    """The operator's settings the decision reads (Helm values inlineRules.enabled, namespace)."""

    inline_rules_enabled: bool = False
    operator_namespace: str = DEFAULT_OPERATOR_NAMESPACE
    deny_rules: tuple[DenyRule, ...] = ()  # the chart's denyRules


class PolicyTestFile(WireModel):
    api_version: Literal["jitgrant.dev/v1alpha1"] = "jitgrant.dev/v1alpha1"
    kind: Literal["GrantPolicyTest"] = "GrantPolicyTest"
    metadata: dict[str, Any] = {}
    settings: Settings = Settings()
    cases: tuple[Case, ...] = Field(min_length=1)


def _field(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


def parse_test_file(path: Path, doc: Mapping[str, Any]) -> PolicyTestFile:
    """The test file, or a ManifestError naming the file, each bad case (number and name) and field."""
    try:
        return PolicyTestFile.model_validate(dict(doc))
    except ValidationError as exc:
        raw_cases = doc.get("cases")
        problems = []
        for error in exc.errors(include_url=False)[:10]:
            loc = tuple(error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            where = ""
            if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
                number = loc[1]
                raw = raw_cases[number] if isinstance(raw_cases, list) and number < len(raw_cases) else {}
                name = raw.get("name") if isinstance(raw, Mapping) else None
                where = f"case {number + 1}" + (f" {name!r}" if name else "") + ": "
                loc = loc[2:]
            problems.append(f"{where}{_field(loc)}: {message}")
        raise ManifestError(f"{path}: {TEST_KIND} is malformed: " + "; ".join(problems)) from exc


@dataclass(frozen=True)
class CaseResult:
    path: Path
    case: Case
    answer: DryRunAnswer
    mismatches: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.mismatches


def evaluate(case: Case, manifests: Manifests, settings: Settings) -> DryRunAnswer:
    """What filing `case.request` as `case.identity` would do, given the policies and ClusterRoles."""
    name = str(case.request.get("policy") or "")
    loaded = manifests.policies.get(name)
    if case.identity.oidc is not None:
        usable = loaded.check.spec if loaded is not None and loaded.check.valid else None
        oidc = _oidc_stamp(case.identity.oidc, policy_name=name, policy=usable)
        if isinstance(oidc, str):
            # The mutating webhook refuses the creation itself: nothing is filed.
            return DryRunAnswer(Outcome.DENIED, Reason.REQUESTER_NOT_VERIFIED, f"OIDC token refused: {oidc}")
        stamp = oidc
    else:
        stamp = requester_from_userinfo(case.identity.userinfo())
    body = {
        "apiVersion": GROUP_VERSION,
        "kind": "AccessRequest",
        "metadata": {"name": "policy-test", "namespace": "default"},
        "spec": {**case.request, "requester": stamp_to_wire(stamp)},
    }
    if loaded is not None and not loaded.check.valid:
        # What the reconciler does with a stored policy that fails check_policy (policy_status.py).
        message = f"GrantPolicy {name!r} is invalid: {loaded.check.message}; the platform team must fix it"
        return DryRunAnswer(Outcome.DENIED, Reason.POLICY_INVALID, message)
    policy = loaded.check.spec if loaded is not None else None
    if policy is not None:  # what admission does with a namespaceSelector (policy/selector.py)
        namespace = str(case.request.get("namespace") or "")
        policy = policy_for_namespace(
            policy, namespace, case.namespace_labels, operator_namespace=settings.operator_namespace
        )
    answer = dry_run_answer(
        body=body,
        policy=policy,
        inline_rules_enabled=settings.inline_rules_enabled,
        operator_namespace=settings.operator_namespace,
    )
    if answer.outcome is Outcome.DENIED or policy is None or answer.request is None:
        return answer
    spec = answer.request.spec
    role = spec.cluster_role
    rules = spec.rules or ()
    if role is not None:
        live = {r.name: r.rules for r in case.cluster_roles}
        found = live.get(role, manifests.cluster_roles.get(role))
        if found is None:
            return answer  # no live rules on file: nothing to hold against acceptDangerous or deny rules
        rules = found
        widened = widened_reason(policy_name=name, policy=policy, cluster_role=role, rules=rules)
        if widened is not None:
            return DryRunAnswer(Outcome.DENIED, Reason.CLUSTER_ROLE_WIDENED, widened, request=answer.request)
    # The grant-time deny check (policy/deny.py), as the reconciler makes it before binding.
    denied = grant_deny_reason(
        policy=policy,
        cluster_wide=settings.deny_rules,
        namespace=spec.namespace,
        cluster_role=role,
        rules=rules,
    )
    if denied is None:
        return answer
    return DryRunAnswer(Outcome.DENIED, Reason.DENY_RULE_MATCHED, denied, request=answer.request)


def compare(expect: Expectation, answer: DryRunAnswer) -> tuple[str, ...]:
    """Every way the answer differs from the expectation, each naming the field."""
    found: list[str] = []
    if answer.outcome is not expect.outcome:
        found.append(f"outcome: expected {expect.outcome}, got {answer.outcome}")
    if expect.reason is not None and answer.reason != expect.reason:
        found.append(f"reason: expected {expect.reason}, got {answer.reason}")
    found += [
        f"message: expected it to contain {text!r}"
        for text in expect.message_contains
        if text not in answer.message
    ]
    if expect.approvals is not None and answer.approvals != expect.approvals:
        found.append(f"approvals: expected {expect.approvals}, got {answer.approvals}")
    if expect.approver_groups is not None and set(answer.approver_groups) != set(expect.approver_groups):
        found.append(
            f"approverGroups: expected {list(expect.approver_groups)}, got {list(answer.approver_groups)}"
        )
    if expect.approver_users is not None and set(answer.approver_users) != set(expect.approver_users):
        found.append(
            f"approverUsers: expected {list(expect.approver_users)}, got {list(answer.approver_users)}"
        )
    if expect.duration is not None:
        got = format_duration(answer.duration) if answer.duration is not None else "none"
        if answer.duration != parse_duration(expect.duration):
            found.append(f"duration: expected {expect.duration}, got {got}")
    return tuple(found)


def run_tests(manifests: Manifests) -> tuple[list[CaseResult], list[str]]:
    """Every case of every test file, and the files that could not be used (named, with the case)."""
    results: list[CaseResult] = []
    errors = list(manifests.errors)
    for path, doc in manifests.tests:
        try:
            test_file = parse_test_file(path, doc)
        except ManifestError as exc:
            errors.append(str(exc))
            continue
        for case in test_file.cases:
            answer = evaluate(case, manifests, test_file.settings)
            results.append(CaseResult(path, case, answer, compare(case.expect, answer)))
    return results, errors
