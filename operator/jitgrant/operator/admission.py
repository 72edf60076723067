"""Admission webhooks for AccessRequests: who is asking, and who approved.

Importing this module registers three handlers on kopf's default registry:

- `stamp-requester` (mutating, CREATE/UPDATE): on CREATE, stamps `spec.requester` from the API server's
  `userInfo`, or from a verified OIDC ID token passed in the `jitgrant.dev/oidc-token` annotation (which
  it removes), and seals the spec; on UPDATE, turns a `jitgrant.dev/approve|deny` annotation into an
  entry with a receipt in `jitgrant.dev/approvals`.
- `validate-request` (validating, CREATE/UPDATE): refuses unsealed creations, spec or seal changes,
  hand-written approvals, approvals by the wrong people, revocations by anyone but the requester, an
  eligible approver or someone who may delete the request, and edits of the operator's own metadata.
- `guard-status` (validating, UPDATE of the status subresource): only the operator writes status.
- `record-deletion` (validating, DELETE): never refuses (RBAC's `delete` is standing to revoke); before
  allowing, it writes who is deleting (sealed, from `userInfo`; for the garbage collector, the owners
  it followed) into `jitgrant.dev/deleted-by`, where the leader's finalizer reads it for the `revoked`
  record. The note is on the object itself, so it reaches whichever replica leads, across restarts.

The decisions are pure functions in `jitgrant.approvals` (review, release, revocation); this module
parses, calls them and answers, with refusals as `kopf.AdmissionError` so their message reaches
kubectl verbatim.

Needs `memo.runtime` with `.settings` (an OperatorSettings: `receipt_key`, `operator_username`) and
`async .get_policy(name) -> GrantPolicySpec | None`; optionally `.clock`, `.oidc` (an OIDCVerifier),
`.operator_usernames` and `.own` (the own cluster, asked for SubjectAccessReviews; without it only the
requester, an eligible approver or the operator may revoke).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import kopf
from kopf.on import WebhookDecorator

from jitgrant.approvals.release import review_release
from jitgrant.approvals.review import (
    Caller,
    DecisionRefused,
    annotations_of,
    operator_username,
    plan_decision,
    review_create,
    review_status_update,
    review_update,
    scrub_last_applied,
)
from jitgrant.approvals.revocation import deletion_stamp, fate_touched, review_revoke, revoker_standing
from jitgrant.audit.records import audit_event
from jitgrant.clusters.errors import ClusterAccessError
from jitgrant.clusters.port import AccessSubject
from jitgrant.identity.claims import issuer_entry, policy_not_found, requester_refusal
from jitgrant.identity.jwks import IssuerUnavailable, JWKSCache
from jitgrant.identity.oidc import OIDCVerifier, TokenRefused, unverified_issuer
from jitgrant.identity.stamp import (
    Revoker,
    requester_from_userinfo,
    revoker_refusal,
    seal_requester,
    stamp_revoker,
    stamp_to_wire,
)
from jitgrant.lifecycle.open_requests import (
    OpenRequest,
    already_requested_message,
    limit_refusal,
    requester_of,
)
from jitgrant.models import (
    API_GROUP,
    API_VERSION,
    AccessRequest,
    GrantPolicySpec,
    RequesterStamp,
    parse_duration,
)
from jitgrant.models.vocabulary import (
    APPROVALS_ANNOTATION,
    APPROVE_ANNOTATION,
    CREATED_BY_EXTRA,
    DELETED_BY_ANNOTATION,
    DENY_ANNOTATION,
    EXISTING_REQUEST_MARKER,
    FINALIZER,
    LAST_APPLIED_ANNOTATION,
    OIDC_TOKEN_ANNOTATION,
    REQUESTER_SEAL_ANNOTATION,
    REVOKE_ANNOTATION,
    REVOKED_BY_ANNOTATION,
    EventType,
    Reason,
)
from jitgrant.operator.context import AdmissionContext
from jitgrant.operator.dry_run import answer_dry_run
from jitgrant.operator.extension_admission import guard_extension
from jitgrant.operator.policy_status import ready_condition
from jitgrant.operator.telemetry import measured
from jitgrant.policy.decision import duration_reason
from jitgrant.policy.gate import (
    PolicyRefusal,
    ReadyState,
    not_ready,
    policy_gate,
    policy_not_found_message,
)
from jitgrant.reactor.runtime import Runtime
from jitgrant.reconcile.guardrails import scoped_to_namespace

PLURAL = "accessrequests"
MUTATE_ID = "stamp-requester"
VALIDATE_ID = "validate-request"
STATUS_ID = "guard-status"
DELETE_ID = "record-deletion"
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet the API server uses for generateName

_default_verifier: OIDCVerifier | None = None
log = logging.getLogger("jitgrant.admission")


# --- the runtime the webhooks need ------------------------------------------------------------------


def _runtime(memo: Any) -> AdmissionContext:
    runtime = memo.get("runtime") if isinstance(memo, Mapping) else getattr(memo, "runtime", None)
    if runtime is None:
        raise kopf.AdmissionError(
            "jitgrant operator is not ready (no runtime in kopf's memo); try again shortly", code=503
        )
    if isinstance(runtime, Runtime):
        return runtime  # the operator's own: mypy holds it to the Protocol
    context: AdmissionContext = runtime  # a test's smaller one
    return context


def _key(runtime: AdmissionContext) -> bytes:
    key = runtime.settings.receipt_key
    if not isinstance(key, bytes) or len(key) < 16:
        raise kopf.AdmissionError("jitgrant operator has no usable receipt key; refusing", code=500)
    return key


def _now(runtime: AdmissionContext) -> datetime:
    return runtime.clock()


def operator_usernames(runtime: AdmissionContext) -> Collection[str]:
    """Who the operator itself is: its own patches (finalizers, progress, status) are never blocked."""
    configured = runtime.operator_usernames
    if configured:
        return frozenset(configured)
    settings = runtime.settings
    return frozenset(
        {operator_username(namespace=settings.operator_namespace, service_account=settings.instance)}
    )


def _verifier(runtime: AdmissionContext) -> OIDCVerifier:
    global _default_verifier
    if runtime.oidc is not None:
        return runtime.oidc
    if _default_verifier is None:
        _default_verifier = OIDCVerifier(keys=JWKSCache())
    return _default_verifier


async def _policy(runtime: AdmissionContext, name: str) -> GrantPolicySpec | None:
    return await runtime.get_policy(name)


def _refuse(message: str, code: int = 403) -> kopf.AdmissionError:
    return kopf.AdmissionError(message, code=code)


# --- CREATE: stamp and seal ---------------------------------------------------------------------------


async def _oidc_stamp(
    *,
    runtime: AdmissionContext,
    token: str,
    spec: Mapping[str, Any],
    userinfo: Mapping[str, Any],
    dryrun: bool,
) -> RequesterStamp:
    name = str(spec.get("policy") or "")
    policy = await _policy(runtime, name)
    if policy is None:
        raise _refuse(f"OIDC token refused: {policy_not_found(name)}")
    try:
        claimed = unverified_issuer(token)
    except TokenRefused as error:
        raise _refuse(f"OIDC token refused: {error}") from error
    issuer = issuer_entry(policy, policy_name=name, claimed=claimed)
    if isinstance(issuer, str):
        raise _refuse(f"OIDC token refused: {issuer}")
    try:
        identity = await _verifier(runtime).verify(token, issuer=issuer, consume=not dryrun)
    except TokenRefused as error:
        # An IdP that did not answer is not the token's fault: say that nothing happened, so the
        # agent retries rather than giving up (and the refusal comes well inside the API server's
        # webhook timeout, never as its HTTP 500).
        if isinstance(error.__cause__, IssuerUnavailable):
            raise _refuse(f"OIDC token refused: {error}; nothing was filed", code=503) from error
        raise _refuse(f"OIDC token refused: {error}") from error
    refusal = requester_refusal(identity, issuer=issuer, policy_name=name)
    if refusal is not None:
        raise _refuse(f"OIDC token refused: {refusal}")
    creator = str(userinfo.get("username") or "")
    return identity.to_stamp(extra={CREATED_BY_EXTRA: (creator,)} if creator else None)


def _name_for(meta: Mapping[str, Any]) -> tuple[str, bool]:
    """The object's name, generating one from generateName now (the seal covers the name)."""
    name = meta.get("name")
    if isinstance(name, str) and name:
        return name, False
    prefix = meta.get("generateName")
    if isinstance(prefix, str) and prefix:
        suffix = "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
        return f"{prefix[:58]}{suffix}", True
    raise _refuse("an AccessRequest needs metadata.name or metadata.generateName", code=400)


async def _mutate_create(
    *,
    runtime: AdmissionContext,
    body: Mapping[str, Any],
    userinfo: Mapping[str, Any],
    patch: kopf.Patch,
    dryrun: bool,
) -> None:
    meta = body.get("metadata") or {}
    spec = dict(body.get("spec") or {})
    namespace = meta.get("namespace")
    if not isinstance(namespace, str) or not namespace:
        raise _refuse("an AccessRequest must be created in a namespace", code=400)
    token = annotations_of(body).get(OIDC_TOKEN_ANNOTATION)
    if token:
        stamp = await _oidc_stamp(runtime=runtime, token=token, spec=spec, userinfo=userinfo, dryrun=dryrun)
    else:
        try:
            stamp = requester_from_userinfo(userinfo)
        except ValueError as error:
            raise _refuse(str(error)) from error
    name, generated = _name_for(meta)
    spec["requester"] = stamp_to_wire(stamp)
    seal = seal_requester(key=_key(runtime), namespace=namespace, name=name, spec=spec)

    def apply(raw: Any) -> None:
        # A whole-value replacement: a merge patch would keep fields the requester typed under
        # spec.requester that the stamp leaves out (issuer, subject, extra...).
        raw.setdefault("spec", {})["requester"] = spec["requester"]
        metadata = raw.setdefault("metadata", {})
        if generated:
            metadata["name"] = name
        annotations = metadata.get("annotations") or {}
        annotations.pop(OIDC_TOKEN_ANNOTATION, None)
        last_applied = annotations.get(LAST_APPLIED_ANNOTATION)
        if last_applied is not None and OIDC_TOKEN_ANNOTATION in last_applied:
            scrubbed = scrub_last_applied(last_applied)
            if scrubbed is None:
                del annotations[LAST_APPLIED_ANNOTATION]
            else:
                annotations[LAST_APPLIED_ANNOTATION] = scrubbed
        annotations[REQUESTER_SEAL_ANNOTATION] = seal
        metadata["annotations"] = annotations
        # Born with the finalizer: deleting the request is certain to revoke its grant from the
        # start, and the leader makes no write (and the webhooks no second round) to add it.
        finalizers = list(metadata.get("finalizers") or [])
        if FINALIZER not in finalizers:
            metadata["finalizers"] = [*finalizers, FINALIZER]

    patch.fns.append(apply)


# --- UPDATE: record an approve/deny ---------------------------------------------------------------------


def _mutate_update(
    *,
    runtime: AdmissionContext,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    userinfo: Mapping[str, Any],
    patch: kopf.Patch,
) -> None:
    try:
        record = plan_decision(
            old=old, new=new, caller=Caller.from_userinfo(userinfo), key=_key(runtime), now=_now(runtime)
        )
    except DecisionRefused as error:
        raise _refuse(str(error), code=400) from error
    if record is None:
        return

    def apply(raw: Any) -> None:
        annotations = raw.setdefault("metadata", {}).setdefault("annotations", {})
        annotations.pop(APPROVE_ANNOTATION, None)
        annotations.pop(DENY_ANNOTATION, None)
        annotations[APPROVALS_ANNOTATION] = record.approvals_value

    patch.fns.append(apply)


def _stamp_revoker(
    *,
    runtime: AdmissionContext,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    userinfo: Mapping[str, Any],
    patch: kopf.Patch,
) -> None:
    """Whoever sets jitgrant.dev/revoke is stamped next to it from userInfo and sealed, as an approver
    is, so the `revoked` audit record can name them (the validating webhook refuses a forged stamp)."""
    reason = annotations_of(new).get(REVOKE_ANNOTATION)
    if reason is None or annotations_of(old).get(REVOKE_ANNOTATION) == reason:
        return
    caller = Caller.from_userinfo(userinfo)
    uid = str((old.get("metadata") or {}).get("uid") or "")
    if not caller.username or not uid:
        raise _refuse("a revocation needs the request's uid and an authenticated caller", code=400)
    revoker = Revoker(username=caller.username, groups=caller.groups, reason=reason)
    stamp = stamp_revoker(key=_key(runtime), uid=uid, revoker=revoker)

    def apply(raw: Any) -> None:
        raw.setdefault("metadata", {}).setdefault("annotations", {})[REVOKED_BY_ANNOTATION] = stamp

    patch.fns.append(apply)


def _revoker_refusal(
    *, runtime: AdmissionContext, old: Mapping[str, Any], new: Mapping[str, Any], caller: Caller
) -> str | None:
    return revoker_refusal(
        key=_key(runtime),
        uid=str((old.get("metadata") or {}).get("uid") or ""),
        old=annotations_of(old),
        new=annotations_of(new),
        annotation=REVOKED_BY_ANNOTATION,
        revoke_annotation=REVOKE_ANNOTATION,
        caller=caller.username,
    )


async def _revoke_refusal(
    *, runtime: AdmissionContext, old: Mapping[str, Any], new: Mapping[str, Any], userinfo: Mapping[str, Any]
) -> str | None:
    """Who may set jitgrant.dev/revoke, or change any other metadata that decides the request's fate
    (approvals/revocation.py): the API server is asked whether the caller may delete the request only
    when nothing on the request itself gives them standing."""
    if not fate_touched(old, new):
        return None
    caller, key = Caller.from_userinfo(userinfo), _key(runtime)
    policy = await _policy(runtime, str((old.get("spec") or {}).get("policy") or ""))
    operators = operator_usernames(runtime)
    may_delete: bool | None = None
    if revoker_standing(old=old, caller=caller, key=key, policy=policy, operator_usernames=operators) is None:
        may_delete = await _may_delete(runtime, old=old, userinfo=userinfo)
    return review_revoke(
        old=old,
        new=new,
        caller=caller,
        key=key,
        policy=policy,
        operator_usernames=operators,
        may_delete=may_delete,
    )


async def _may_delete(
    runtime: AdmissionContext, *, old: Mapping[str, Any], userinfo: Mapping[str, Any]
) -> bool | None:
    """A SubjectAccessReview: may the caller delete this AccessRequest? None: cannot be asked here."""
    meta = old.get("metadata") or {}
    try:
        allowed: bool | None = await runtime.own.subject_may(
            AccessSubject.from_userinfo(userinfo),
            verb="delete",
            group=API_GROUP,
            resource=PLURAL,
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
        )
    except ClusterAccessError as error:
        raise _refuse(
            f"could not ask the API server whether you may delete this AccessRequest ({error}); "
            "try again shortly",
            code=503,
        ) from error
    return allowed


# --- DELETE: record who deletes -------------------------------------------------------------------------


async def _record_deleter(
    runtime: AdmissionContext, *, old: Mapping[str, Any], userinfo: Mapping[str, Any]
) -> None:
    """Stamp the deleter onto the request before the API server marks it deleted.

    A DELETE webhook cannot mutate, so this one writes (as the operator, from whichever replica the API
    server called: a write caused by an admission request, not by a watch event, so no replica repeats
    it). The API server runs delete admission inside its retrying update of the object: this write
    makes that update conflict once and admission run again, and the second time the same stamp is
    already there (`deletion_stamp` is deterministic), so nothing is written and the deletion goes on.
    A failed write never blocks a deletion: the record then says the deleter is unknown.
    """
    stamp = deletion_stamp(old=old, caller=Caller.from_userinfo(userinfo), key=_key(runtime))
    if stamp is None:
        return
    meta = old.get("metadata") or {}
    namespace, name, uid = str(meta.get("namespace")), str(meta.get("name")), str(meta.get("uid"))
    try:
        await runtime.own.annotate_request(namespace, name, {DELETED_BY_ANNOTATION: stamp}, uid=uid)
    except ClusterAccessError as error:
        log.warning("could not record who deletes AccessRequest %s/%s: %s", namespace, name, error)


# --- kopf registrations -------------------------------------------------------------------------------


def _mutating(registry: kopf.OperatorRegistry | None = None) -> WebhookDecorator:
    decorator = kopf.on.mutate(
        API_GROUP,
        API_VERSION,
        PLURAL,
        id=MUTATE_ID,
        operations=["CREATE", "UPDATE"],
        side_effects=True,  # the OIDC replay cache; nothing is remembered on dry runs
        ignore_failures=False,  # failurePolicy: Fail
        registry=registry,
    )
    return measured(MUTATE_ID, decorator)


def _validating(registry: kopf.OperatorRegistry | None = None) -> WebhookDecorator:
    decorator = kopf.on.validate(
        API_GROUP,
        API_VERSION,
        PLURAL,
        id=VALIDATE_ID,
        operations=["CREATE", "UPDATE"],
        ignore_failures=False,
        registry=registry,
    )
    return measured(VALIDATE_ID, decorator)


def _guarding_status(registry: kopf.OperatorRegistry | None = None) -> WebhookDecorator:
    decorator = kopf.on.validate(
        API_GROUP,
        API_VERSION,
        PLURAL,
        id=STATUS_ID,
        subresource="status",
        operations=["UPDATE"],
        ignore_failures=False,
        registry=registry,
    )
    return measured(STATUS_ID, decorator)


def _recording_deletion(registry: kopf.OperatorRegistry | None = None) -> WebhookDecorator:
    decorator = kopf.on.validate(
        API_GROUP,
        API_VERSION,
        PLURAL,
        id=DELETE_ID,
        operations=["DELETE"],
        side_effects=True,  # it writes the deleter's stamp, except on dry runs: NoneOnDryRun
        ignore_failures=False,  # every deletion is attributed; the operator must be up to finish one anyway
        registry=registry,
    )
    return measured(DELETE_ID, decorator)


@_mutating()
async def stamp_requester(
    *,
    body: kopf.Body,
    userinfo: Mapping[str, Any],
    patch: kopf.Patch,
    dryrun: bool,
    memo: Any,
    **kwargs: Any,
) -> None:
    runtime = _runtime(memo)
    operation, old = kwargs.get("operation"), kwargs.get("old")
    if operation == "CREATE":
        await _mutate_create(runtime=runtime, body=body, userinfo=userinfo, patch=patch, dryrun=dryrun)
    elif operation == "UPDATE" and old is not None:
        _mutate_update(runtime=runtime, old=old, new=body, userinfo=userinfo, patch=patch)
        _stamp_revoker(runtime=runtime, old=old, new=body, userinfo=userinfo, patch=patch)


@_validating()
async def validate_request(
    *,
    body: kopf.Body,
    userinfo: Mapping[str, Any],
    memo: Any,
    **kwargs: Any,
) -> None:
    runtime = _runtime(memo)
    operation, old = kwargs.get("operation"), kwargs.get("old")
    key = _key(runtime)
    refusal: str | None = None
    if operation == "CREATE":
        refusal = review_create(body, key=key)
        if refusal is None:
            await _guardrails(
                runtime, body, dryrun=bool(kwargs.get("dryrun")), warnings=kwargs.get("warnings")
            )
    elif operation == "UPDATE" and old is not None:
        caller = Caller.from_userinfo(userinfo)
        refusal = review_release(old=old, new=body, caller=caller, key=key)
        refusal = refusal or await _revoke_refusal(runtime=runtime, old=old, new=body, userinfo=userinfo)
        refusal = refusal or _revoker_refusal(runtime=runtime, old=old, new=body, caller=caller)
        if refusal is not None:
            raise _refuse(refusal)
        policy: GrantPolicySpec | None = None
        if annotations_of(old).get(APPROVALS_ANNOTATION) != annotations_of(body).get(APPROVALS_ANNOTATION):
            policy = await _policy(runtime, str((old.get("spec") or {}).get("policy") or ""))
        refusal = review_update(
            old=old,
            new=body,
            caller=Caller.from_userinfo(userinfo),
            key=key,
            policy=policy,
            operator_usernames=operator_usernames(runtime),
        )
    if refusal is not None:
        raise _refuse(refusal)


async def _guardrails(
    runtime: AdmissionContext, body: Mapping[str, Any], *, dryrun: bool, warnings: Any
) -> None:
    """Issue 31's checks on a new request, answered before it is stored: a duplicate of an open request
    (AlreadyRequested), past the policy's spec.limits (LimitReached), a duration outside
    minDuration..maxDuration. A dry run gets the same answers through `decide_new`.

    The index is this replica's (lifecycle/open_requests.py); what it has not heard of yet, the
    reconciler refuses before its first decision, by the same rules.
    """
    spec = body.get("spec") or {}
    name = str(spec.get("policy") or "")
    policy, gate = await _policy_and_gate(runtime, name, dryrun=dryrun)
    try:  # a namespaceSelector is matched against the target namespace's live labels
        policy = await scoped_to_namespace(runtime, policy, str(spec.get("namespace") or ""))
    except ClusterAccessError as error:
        message = f"could not read the target namespace's labels ({error}); try again shortly"
        raise _refuse(message, code=503) from error
    existing = _existing(runtime, body) if policy is None or policy.limits.one_open_per_scope else None
    limit = _limit(runtime, body, policy)
    if spec.get("extends"):  # an extension: its own rules first (operator/extension_admission.py)
        await guard_extension(
            runtime,
            body,
            policy=policy,
            dryrun=dryrun,
            warnings=warnings,
            refuse=_refused,
            existing=existing,
            limit=limit,
        )
        if dryrun:
            return
    if dryrun:
        await _answer_dry_run(
            runtime, body, warnings, policy=policy, existing=existing, limit=limit, refusal=gate
        )
        return
    if gate is not None:
        # Issue 24 §5: nothing is stored under a policy that does not exist or is not Ready. A name
        # that exists nowhere is no metric label (anyone could mint series with typos).
        counted = gate.reason is not Reason.POLICY_NOT_FOUND
        await _guardrail_refused(runtime, body, gate.reason, gate.message, metric=counted)
    if existing is not None:
        key = spec.get("requestKey")
        message = already_requested_message(existing, same_key=bool(key) and key == existing.request_key)
        marker = f"{EXISTING_REQUEST_MARKER}: {existing.namespace}/{existing.name}"
        # 409 with the marker last: a client that sent the same requestKey takes that request as
        # its answer, anyone else reads why and what to do.
        await _guardrail_refused(runtime, body, Reason.ALREADY_REQUESTED, f"{message} ({marker})", code=409)
    if limit is not None:
        await _guardrail_refused(runtime, body, Reason.LIMIT_REACHED, limit)
    refusal = _duration_refusal(body, policy)
    if refusal is not None:
        await _guardrail_refused(runtime, body, Reason.POLICY_REFUSED, refusal)


async def _policy_and_gate(
    runtime: AdmissionContext, name: str, *, dryrun: bool
) -> tuple[GrantPolicySpec | None, PolicyRefusal | None]:
    """The policy a new request names, and why nothing may be filed under it (policy/gate.py).

    A real create reads the policy and its Ready condition from this replica's watch (no call per
    request); a dry run, rare and asked right after editing a policy, reads it fresh, as does a
    create naming a policy the watch does not hold (missing, invalid, or not seen yet).
    """
    watched = runtime.watched_policies
    if not dryrun and name in watched:
        gate = not_ready(name, runtime.watched_ready.get(name))
        if gate is None:
            return watched[name], gate
    try:
        body = await runtime.own.read_policy_object(name)
    except Exception as error:  # no answer about the policy: nothing is decided, the agent retries
        raise _refuse(
            f"could not read GrantPolicy {name!r} ({error}); try again shortly", code=503
        ) from error
    if body is None:
        # No stored object: a context that serves specs alone (the webhook tests' runtime) may still
        # know it, with no Ready condition to judge; the operator's own reads the same store.
        policy = await _policy(runtime, name)
        missing = PolicyRefusal(Reason.POLICY_NOT_FOUND, policy_not_found_message(name))
        return policy, None if policy is not None else missing
    policy, gate = policy_gate(name, body)
    if gate is None or gate.reason is not Reason.POLICY_NOT_READY:
        return policy, gate
    # Not Ready as last written: judged again now before refusing, since the condition is rewritten
    # only when the policy changes or every 30 s, and the ClusterRole it missed may exist by now (a
    # request filed in the second after a fix is not refused by a stale status).
    try:
        status, reason, message = await ready_condition(runtime, body)
    except Exception as error:
        raise _refuse(
            f"could not check GrantPolicy {name!r} ({error}); try again shortly", code=503
        ) from error
    if status != "False":
        return policy, None
    return policy, not_ready(name, ReadyState(status, reason, message, current=True))


async def _guardrail_refused(
    runtime: AdmissionContext,
    body: Mapping[str, Any],
    reason: Reason,
    message: str,
    *,
    code: int = 403,
    metric: bool = True,
) -> None:
    """Count the refusal (per policy), audit it (at most once per requester per minute), refuse."""
    spec = body.get("spec") or {}
    policy = str(spec.get("policy") or "")
    if metric:
        runtime.metrics.guardrail_refused(policy=policy, reason=reason.value)
    now = _now(runtime)
    # One record per requester and reason per minute: a policy-gate refusal does not swallow the
    # record of a looping agent's AlreadyRequested flood in the same minute, nor the reverse.
    count = runtime.refusals.note(f"{requester_of(spec)}\n{reason.value}", now)
    if count is not None:
        try:
            request = AccessRequest.from_object(body)
            event = audit_event(
                request=request,
                event_type=EventType.REFUSED,
                at=now,
                cluster=runtime.own.name,
                decision="refused",
                reason=f"{reason}: {count} refusal(s) of this requester since the last record; {message}",
            )
            await runtime.audit.record(event)
        except Exception:  # the refusal stands whether or not its record could be written
            log.warning("could not audit a %s refusal under policy %s", reason, policy, exc_info=True)
    raise _refuse(f"{reason}: {message}", code=code)


async def _refused(runtime: AdmissionContext, body: Mapping[str, Any], reason: Reason, message: str) -> None:
    await _guardrail_refused(runtime, body, reason, message)


def _duration_refusal(body: Mapping[str, Any], policy: GrantPolicySpec | None) -> str | None:
    """A duration under the policy's minDuration, with the allowed range: the same check the
    reconciler's decision makes (policy/decision.py), so the two never disagree."""
    spec = body.get("spec") or {}
    if policy is None:
        return None  # the reconciler denies it with PolicyNotFound
    try:
        asked = spec.get("duration")
        duration = parse_duration(str(asked)) if asked else policy.default_duration_delta
    except ValueError:
        return None  # the reconciler fails it with InvalidRequest, naming the field
    if duration >= policy.min_duration_delta:
        return None  # past maxDuration: Denied by the reconciler, as before minDuration existed
    return duration_reason(policy_name=str(spec.get("policy") or ""), policy=policy, duration=duration)


def _limit(runtime: AdmissionContext, body: Mapping[str, Any], policy: GrantPolicySpec | None) -> str | None:
    if policy is None:
        return None
    return limit_refusal(runtime.open_requests, body, limits=policy.limits, now=_now(runtime))


def _existing(runtime: AdmissionContext, body: Mapping[str, Any]) -> OpenRequest | None:
    """The open request a new one duplicates, from this replica's index (lifecycle/open_requests.py)."""
    return runtime.open_requests.existing_for(body)


async def _answer_dry_run(
    runtime: AdmissionContext,
    body: Mapping[str, Any],
    warnings: Any,
    *,
    policy: GrantPolicySpec | None,
    existing: OpenRequest | None = None,
    limit: str | None = None,
    refusal: PolicyRefusal | None = None,
) -> None:
    """A dryRun create is answered with the operator's decision (operator/dry_run.py)."""
    settings = runtime.settings
    await answer_dry_run(
        body=body,
        existing=existing,
        limit=limit,
        refusal=refusal,
        policy=policy,
        inline_rules_enabled=settings.inline_rules_enabled,
        operator_namespace=settings.operator_namespace,
        warnings=warnings if isinstance(warnings, list) else [],
    )


@_guarding_status()
async def guard_status(*, userinfo: Mapping[str, Any], memo: Any, **_: Any) -> None:
    runtime = _runtime(memo)
    refusal = review_status_update(
        caller=Caller.from_userinfo(userinfo), operator_usernames=operator_usernames(runtime)
    )
    if refusal is not None:
        raise _refuse(refusal)


@_recording_deletion()
async def record_deletion(
    *, body: kopf.Body, userinfo: Mapping[str, Any], dryrun: bool, memo: Any, **_: Any
) -> None:
    if dryrun:
        return
    await _record_deleter(_runtime(memo), old=body, userinfo=userinfo)


def register(registry: kopf.OperatorRegistry) -> None:
    """Register the same webhooks on another registry (embedded operators, tests)."""
    _mutating(registry)(stamp_requester)
    _validating(registry)(validate_request)
    _guarding_status(registry)(guard_status)
    _recording_deletion(registry)(record_deletion)
