"""The MCP server: seven tools, each acting as the calling agent and nobody else.

stdio: the server runs as the agent's own process with the agent's kubeconfig (or in-cluster
ServiceAccount); every call acts as that identity. Streamable HTTP: the server runs next to the
operator, holds no identity it uses for tools, and acts per call as the holder of the bearer token in
that call's Authorization header (a ServiceAccount or OIDC token the API server authenticates). A
call without one is refused; the server's own credentials only tell it where the API server is.

`access_activity` reads the cluster's audit log from the source the server was started with
(`activity_source_from`): the server's own access to that log, shown only for the caller's own
requests, checked exactly as `access_status` checks them (the client's `_get_own`, as the caller).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import ToolAnnotations
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from jitgrant.activity.base import AuditSource
from jitgrant.activity.files import AuditLogFiles
from jitgrant.activity.report import Activity
from jitgrant.client import (
    AccessDenied,
    AccessEnded,
    AccessFailed,
    AccessTimedOut,
    ActivityUnavailable,
    ApiRefused,
    ApiUnreachable,
    AsyncClient,
    InvalidRequest,
    JitgrantError,
    NotYourRequest,
    Progress,
    RequestNotFound,
)
from jitgrant.client.results import Grantable
from jitgrant.models import AccessRequest
from jitgrant.models.vocabulary import Reason

INSTRUCTIONS = """\
jitgrant gives you short-lived Kubernetes access for one task. Typical flow: list_grantable (what you
may ask for) -> check_access (would it be allowed? nothing is filed) -> request_access (files it and
waits; a human may have to approve) -> do the task with the granted access -> release_access as soon
as you are done -> access_activity (what you did with the grant, from the cluster's audit log).
Access always ends by itself at its expiry. You only ever see your own requests."""

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
#: Where `access_activity` reads the audit log when `jitgrant mcp` has no flag for it (an MCP
#: client's server config sets env; the flags of `jitgrant activity`, if given, win).
AUDIT_LOG_ENV = "JITGRANT_ACTIVITY_AUDIT_LOG"
EKS_CLUSTER_ENV = "JITGRANT_ACTIVITY_EKS_CLUSTER"
LOG_GROUP_ENV = "JITGRANT_ACTIVITY_LOG_GROUP"
MAX_WAIT_SECONDS = 3600


#: Tools that only read (what the client may host-approve without asking); none is open-world: every
#: tool talks to the one Kubernetes API server the client's identity belongs to.
READ_ONLY = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
FILES = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=False)
#: Releasing ends access (destructive); releasing what is already released changes nothing more.
ENDS = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=False)

#: For an argument the schema refuses: what is accepted and an example (the tool error says both).
ACCEPTED: dict[str, tuple[str, str]] = {
    "policy": ("a GrantPolicy name, as text, from list_grantable", '"oncall-restart"'),
    "namespace": ("a namespace name, as text", '"payments"'),
    "justification": ("text saying why you need the access", '"INC-4711 checkout pods stuck"'),
    "cluster_role": ("a ClusterRole name, as text, that the policy offers", '"jit-restart-checkout"'),
    "rules": (
        "a list of rules, each {api_groups, resources, verbs, resource_names (optional)}: lists of text",
        '[{"api_groups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]}]',
    ),
    "duration": (
        "a duration as text: hours/minutes/seconds such as '90s', '10m' or '1h30m', at most the "
        "policy's max_duration (omit it for the policy's default)",
        '"10m"',
    ),
    "wait_seconds": (f"whole seconds from 0 to {MAX_WAIT_SECONDS}", "300"),
    "kubeconfig_path": ("a file path, as text", '"/tmp/grant.kubeconfig"'),
    "name": (
        "the request's name, as text, from request_access or list_my_requests",
        '"oncall-restart-x7k2p"',
    ),
    "reason": ("text saying why you release it", '"task done"'),
}


class CheckedTool(Tool):
    """A tool whose arguments are checked before the SDK's own validation: an unknown argument is
    refused (the schema says additionalProperties: false), and every argument error is a tool error
    in the shape of the domain errors (reason, field, what was given, what is accepted, an example,
    next step) instead of pydantic's dump."""

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self.parameters["additionalProperties"] = False

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        known = {field.alias or name for name, field in self.fn_metadata.arg_model.model_fields.items()}
        unknown = sorted(set(arguments) - known)
        if unknown:
            raise self._refuse(
                unknown[0],
                arguments[unknown[0]],
                f"only the arguments {', '.join(sorted(known))}",
                f"the arguments of {self.name} as its inputSchema lists them",
                f"drop {unknown[0]} (misspelt? the schema has each argument's description) and call again",
            )
        try:
            self.fn_metadata.validate_arguments(arguments)
        except ValidationError as exc:
            problem = exc.errors(include_url=False)[0]
            loc = [str(part) for part in problem["loc"]]
            field = loc[0] if loc else "arguments"
            accepted, example = ACCEPTED.get(field, (problem["msg"], "see the tool's inputSchema"))
            if len(loc) > 1:
                accepted = f"{accepted} ({'.'.join(loc)}: {problem['msg']})"
            given = problem.get("input") if loc else arguments
            raise self._refuse(field, given, accepted, example, f"fix {field} and call again") from None
        return await super().run(arguments, context, convert_result)

    def _refuse(self, field: str, given: object, accepted: str, example: str, step: str) -> ToolError:
        shown = repr(given) if len(repr(given)) <= 80 else f"{repr(given)[:77]}..."
        return ToolError(
            f"Error executing tool {self.name}: {Reason.INVALID_REQUEST}: {field}: got {shown}; "
            f"accepted: {accepted}; e.g. {field}={example}. Next: {step}"
        )


class RuleInput(BaseModel):
    """One RBAC rule, for policies that allow inline rules instead of a ClusterRole."""

    # snake_case like every other input; the camelCase 0.1 shipped is still read (deprecated).
    model_config = ConfigDict(extra="forbid")

    api_groups: list[str] = Field(
        validation_alias=AliasChoices("api_groups", "apiGroups"),
        description='API groups, "" for the core group, e.g. ["apps"]',
    )
    resources: list[str] = Field(description='e.g. ["deployments"]')
    verbs: list[str] = Field(description='e.g. ["get", "patch"]')
    resource_names: list[str] = Field(
        default_factory=list,
        validation_alias=AliasChoices("resource_names", "resourceNames"),
        description="optional: only these objects",
    )

    def to_client(self) -> dict[str, list[str]]:
        return {
            "apiGroups": self.api_groups,
            "resources": self.resources,
            "verbs": self.verbs,
            "resourceNames": self.resource_names,
        }


class RequestSummary(BaseModel):
    """One of your AccessRequests, as the operator last wrote it."""

    name: str
    namespace: str
    policy: str
    phase: str | None = Field(description="None (undecided), Pending, Approved, Active, or a terminal phase")
    reason: str | None = None
    message: str = ""
    scope: str = Field(description="what the grant allows, e.g. 'ClusterRole jit-restart in payments'")
    expires_at: str | None = Field(default=None, description="RFC 3339, when the access ends by itself")
    approvals: list[str] = Field(default_factory=list, description="who approved so far")

    @classmethod
    def of(cls, request: AccessRequest) -> RequestSummary:
        spec, status = request.spec, request.status
        if spec.cluster_role is not None:
            scope = f"ClusterRole {spec.cluster_role} in {spec.namespace}"
        else:
            rules = "; ".join(
                f"{','.join(r.verbs)} {','.join(r.resources)}"
                + (f"/{','.join(r.resource_names)}" if r.resource_names else "")
                for r in spec.rules or ()
            )
            scope = f"{rules} in {spec.namespace}"
        return cls(
            name=request.metadata.name,
            namespace=request.metadata.namespace or "",
            policy=spec.policy,
            phase=status.phase.value if status.phase else None,
            reason=status.reason,
            message=status.message or "",
            scope=scope,
            expires_at=status.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ") if status.expires_at else None,
            approvals=sorted({entry.approver for entry in status.approvals}),
        )


class AccessResult(RequestSummary):
    """The outcome of request_access / access_status: the request, and how to use an active grant."""

    kubeconfig: str | None = Field(
        default=None, description="a delivered kubeconfig (only for grants that issue one)"
    )
    kubeconfig_path: str | None = Field(default=None, description="where the kubeconfig was written (0600)")
    next_step: str = ""


class GrantableList(BaseModel):
    policies: list[dict[str, Any]] = Field(
        description="each: policy, cluster, namespaces, cluster_roles, rule_shapes, max_duration, "
        "default_duration, approval {required, min_approvals, approver_groups, approver_users}, "
        "justification_required, justification_pattern, ready (false: the policy is not Ready and a "
        "request under it would end Failed; null: not judged yet), ready_reason, ready_message"
    )


class CheckAnswer(BaseModel):
    outcome: Literal["allowed", "pending-approval", "denied"]
    reason: str = Field(description="the operator's reason code, e.g. AutoApproved, AwaitingApproval")
    message: str = Field(description="exactly why; for a denial, what to change")
    duration: str | None = None
    approvals_needed: int = 0
    approvers: str | None = None


class MyRequests(BaseModel):
    requests: list[RequestSummary]


class Agents:
    """Which client a tool call acts through: the one identity (stdio), or the caller's token (http)."""

    def __init__(self, base: AsyncClient, *, pass_through: bool, namespace: str | None) -> None:
        self.base = base
        self.pass_through = pass_through
        self.namespace = namespace

    @asynccontextmanager
    async def client(self, ctx: Context[Any, Any]) -> AsyncIterator[AsyncClient]:
        if not self.pass_through:
            try:
                yield self.base
            except JitgrantError as exc:
                raise tool_error(exc) from exc
            return
        header = (ctx.headers or {}).get("authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ToolError(
                "NotAuthenticated: this jitgrant MCP server acts as the calling agent and got no identity. "
                "Next: configure your MCP client to send 'Authorization: Bearer <your Kubernetes "
                "ServiceAccount or OIDC token>' with every request"
            )
        client = self.base.with_token(token.strip(), namespace=self.namespace)
        try:
            if self.namespace is None:
                # A ServiceAccount files its requests in its own namespace unless a tool names another.
                me = await client.whoami()
                if me.username.startswith(SERVICE_ACCOUNT_PREFIX):
                    client.namespace = me.username.split(":")[2]
            yield client
        except JitgrantError as exc:
            raise tool_error(exc) from exc
        finally:
            await client.close()


def tool_error(exc: JitgrantError) -> ToolError:
    """A refusal a model can act on: what was refused, and what to do next."""
    if isinstance(exc, InvalidRequest):
        hint = (
            f"fix {exc.field} and call again (list_grantable shows what each policy offers; "
            "check_access answers without filing anything)"
        )
    elif isinstance(exc, AccessDenied):
        hint = (
            "change what the message names (check_access answers without filing), or pick another "
            "policy from list_grantable"
        )
    elif isinstance(exc, AccessTimedOut):
        hint = "nobody approved in time; ask an approver named by list_grantable, then request again"
    elif isinstance(exc, AccessEnded):
        hint = "the request is over; request_access again if the task still needs access"
    elif isinstance(exc, AccessFailed):
        hint = "the operator could not issue the grant; retry later or tell a human operator"
    elif isinstance(exc, ActivityUnavailable) and exc.reason == Reason.NO_GRANT:
        hint = "the request never became active, so it made no calls; access_status shows its phase"
    elif isinstance(exc, ActivityUnavailable):
        hint = "the audit log could not be read (the message says why); retry later or tell a human operator"
    elif isinstance(exc, NotYourRequest | RequestNotFound):
        hint = "list_my_requests shows the requests you can use"
    elif isinstance(exc, ApiRefused) and exc.status in (401, 403):
        hint = (
            "your identity lacks the RBAC for this (the chart's jitgrant-requester ClusterRole in your "
            "namespace; jitgrant-policy-reader for list_grantable), or your token expired; ask the "
            "platform team"
        )
    elif isinstance(exc, ApiRefused):
        hint = "fix the argument the message names and call again"
    elif isinstance(exc, ApiUnreachable):
        hint = "the Kubernetes API server is unreachable; retry in a moment"
    else:
        hint = "read the message; list_my_requests and access_status show where things stand"
    return ToolError(f"{exc.reason}: {exc.message}. Next: {hint}")


def _result(request: AccessRequest, **extra: Any) -> AccessResult:
    return AccessResult(**RequestSummary.of(request).model_dump(), **extra)


def build_server(
    base: AsyncClient,
    *,
    pass_through: bool,
    namespace: str | None = None,
    activity_source: AuditSource | None = None,
) -> MCPServer[None]:
    """The MCP server with its eight tools; `pass_through` for HTTP (each call acts as its own token);
    `activity_source`: the cluster's audit log, for access_activity (None: that tool says it has none)."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[None]) -> AsyncIterator[None]:
        try:
            yield None
        finally:
            await base.close()

    agents = Agents(base, pass_through=pass_through, namespace=namespace)
    tools: list[Tool] = []

    def tool(
        title: str, description: str, annotations: ToolAnnotations
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            tools.append(
                CheckedTool.from_function(fn, title=title, description=description, annotations=annotations)
            )
            return fn

        return register

    @tool(
        title="What you may request",
        annotations=READ_ONLY,
        description="List the GrantPolicies you may request access under: for each, the namespaces, "
        "ClusterRoles (or inline rule shapes), maximum and default duration, whether a human must "
        "approve and who, and the justification pattern. Call this first.",
    )
    async def list_grantable(ctx: Context[Any, Any]) -> GrantableList:
        async with agents.client(ctx) as client:
            found: list[Grantable] = await client.grantable()
        return GrantableList(policies=[g.model_dump(mode="json") for g in found])

    @tool(
        title="Would this request be allowed? (dry run)",
        annotations=READ_ONLY,
        description="Dry run: would this access request be allowed right away, wait for human approval "
        "(and by whom), or be denied, and exactly why. Answered by the operator's own decision; "
        "nothing is filed, stored or audited. Give clusterRole or rules, not both.",
    )
    async def check_access(
        ctx: Context[Any, Any],
        policy: Annotated[str, Field(description="GrantPolicy name, from list_grantable")],
        namespace: Annotated[str, Field(description="namespace the access is for")],
        justification: Annotated[str, Field(description="why, e.g. 'INC-4711 checkout pods stuck'")],
        cluster_role: Annotated[str | None, Field(description="a ClusterRole the policy offers")] = None,
        rules: Annotated[list[RuleInput] | None, Field(description="inline rules instead")] = None,
        duration: Annotated[str | None, Field(description="e.g. '10m'; default: the policy's")] = None,
    ) -> CheckAnswer:
        async with agents.client(ctx) as client:
            result = await client.check(
                **_args(policy, namespace, justification, cluster_role, rules, duration)
            )
        return CheckAnswer(**result.model_dump())

    @tool(
        title="Request access and wait for it",
        annotations=FILES,
        description="File an access request and wait (up to wait_seconds) until the access is active. "
        "Sends progress notifications: pending, k of N approvals, approved, active until T. Returns "
        "the phase, expiry and granted scope; for grants that deliver one, the kubeconfig to use. If "
        "it is still pending when wait_seconds pass, the request stays filed: call access_status "
        "with wait_seconds to keep waiting. Release it with release_access when the task is done.",
    )
    async def request_access(
        ctx: Context[Any, Any],
        policy: Annotated[str, Field(description="GrantPolicy name, from list_grantable")],
        namespace: Annotated[str, Field(description="namespace the access is for")],
        justification: Annotated[str, Field(description="why, e.g. 'INC-4711 checkout pods stuck'")],
        cluster_role: Annotated[str | None, Field(description="a ClusterRole the policy offers")] = None,
        rules: Annotated[list[RuleInput] | None, Field(description="inline rules instead")] = None,
        duration: Annotated[str | None, Field(description="e.g. '10m'; default: the policy's")] = None,
        wait_seconds: Annotated[int, Field(ge=0, le=MAX_WAIT_SECONDS, description="how long to wait")] = 300,
        kubeconfig_path: Annotated[
            str | None, Field(description="stdio only: write a delivered kubeconfig here (0600)")
        ] = None,
        request_key: Annotated[
            str | None,
            Field(
                description="idempotency key: a retry with the same key gets the open request back "
                "(default: derived from the other arguments, so a repeated call is one request)"
            ),
        ] = None,
    ) -> AccessResult:
        async with agents.client(ctx) as client:
            filed = await client.request(
                **_args(policy, namespace, justification, cluster_role, rules, duration),
                request_key=request_key,
            )
            return await _follow(
                client,
                ctx,
                filed,
                wait_seconds=wait_seconds,
                kubeconfig_path=None if pass_through else kubeconfig_path,
            )

    @tool(
        title="The state of one of your requests",
        annotations=READ_ONLY,
        description="The current state of one of your access requests; with wait_seconds > 0, wait "
        "that long for it to become active (with progress notifications).",
    )
    async def access_status(
        ctx: Context[Any, Any],
        name: Annotated[
            str, Field(description="the request's name (from request_access or list_my_requests)")
        ],
        namespace: Annotated[str | None, Field(description="where the request is filed")] = None,
        wait_seconds: Annotated[int, Field(ge=0, le=MAX_WAIT_SECONDS)] = 0,
    ) -> AccessResult:
        async with agents.client(ctx) as client:
            request = await client.status(name, namespace=namespace)
            if wait_seconds > 0:
                return await _follow(client, ctx, request, wait_seconds=wait_seconds, kubeconfig_path=None)
            kubeconfig = (
                await client.kubeconfig(request)
                if request.status.phase and request.status.phase.value == "Active"
                else None
            )
            return _result(request, kubeconfig=kubeconfig)

    @tool(
        title="Give your access back now",
        annotations=ENDS,
        description="End your own access now, as soon as the task is done (or withdraw a pending "
        "request). Recorded as Released by you. Returns once the access is gone.",
    )
    async def release_access(
        ctx: Context[Any, Any],
        name: Annotated[str, Field(description="the request's name")],
        namespace: Annotated[str | None, Field(description="where the request is filed")] = None,
        reason: Annotated[str, Field(description="optional: why, e.g. 'task done'")] = "task done",
    ) -> AccessResult:
        async with agents.client(ctx) as client:
            ended = await client.release(name, namespace=namespace, reason=reason)
        return _result(ended, next_step="nothing: the access is gone")

    @tool(
        title="Extend your active access",
        annotations=FILES,
        description="Ask for more time on one of your Active grants (same scope; the policy decides "
        "whether extensions are allowed, how many, the total, and whether a human must approve). "
        "Waits up to wait_seconds; returns the grant with its new expires_at once applied. Refused "
        "with the reason (ExtensionRefused) when the policy does not allow it; dry_run answers "
        "without filing.",
    )
    async def extend_access(
        ctx: Context[Any, Any],
        name: Annotated[str, Field(description="your Active request's name")],
        by: Annotated[str, Field(description="how much longer, e.g. '10m'")],
        justification: Annotated[str, Field(description="why it must last longer, e.g. 'INC-4711 ...'")],
        namespace: Annotated[str | None, Field(description="where the request is filed")] = None,
        wait_seconds: Annotated[int, Field(ge=0, le=MAX_WAIT_SECONDS, description="how long to wait")] = 300,
        dry_run: Annotated[bool, Field(description="only ask whether it would be applied")] = False,
    ) -> AccessResult:
        async with agents.client(ctx) as client:
            if dry_run:
                check = await client.check_extension(
                    name, by=by, justification=justification, namespace=namespace
                )
                request = await client.status(name, namespace=namespace)
                return _result(request, next_step=f"{check.outcome}: {check.reason}: {check.message}")
            extended = await client.extend(
                name, by=by, justification=justification, namespace=namespace, timeout=wait_seconds or 1
            )
        ends = _result(extended).expires_at
        return _result(extended, next_step=f"the access now ends at {ends}; release_access when done")

    @tool(
        title="Your access requests",
        annotations=READ_ONLY,
        description="Your access requests in a namespace (default: your own), newest first.",
    )
    async def list_my_requests(
        ctx: Context[Any, Any],
        namespace: Annotated[str | None, Field(description="where requests are filed")] = None,
    ) -> MyRequests:
        async with agents.client(ctx) as client:
            mine = await client.my_requests(namespace=namespace)
        return MyRequests(requests=[RequestSummary.of(r) for r in mine])

    @tool(
        title="What you did with a grant",
        annotations=READ_ONLY,
        description="What you did with one of your grants, from the Kubernetes API server's own audit "
        "log: every API call the grant's RoleBinding allowed, and every call your grant's identity made "
        "during its window that was refused (or allowed by other permissions), in time order. Each call "
        "has time, verb, resource, namespace, name, HTTP code, outcome ('allowed by this grant', "
        "'refused', ...) and attribution: 'authorization-reason' (exact: the API server named this "
        "grant's RoleBinding) or 'identity-window' (made by the grant's identity while it was live). "
        "Use it after a task to confirm what changed, or to see which calls were refused. Only your own "
        "requests. The log can lag (about a minute on EKS): call again if your latest calls are missing.",
    )
    async def access_activity(
        ctx: Context[Any, Any],
        name: Annotated[
            str, Field(description="the request's name (from request_access or list_my_requests)")
        ],
        namespace: Annotated[str | None, Field(description="where the request is filed")] = None,
    ) -> Activity:
        if activity_source is None:
            raise ToolError(
                f"{Reason.ACTIVITY_UNAVAILABLE}: this jitgrant MCP server was started without the "
                "cluster's audit log. Next: ask the platform team to start it with "
                f"{AUDIT_LOG_ENV} (a kube-apiserver --audit-log-path file) or {EKS_CLUSTER_ENV} "
                "(EKS: CloudWatch Logs); docs/agents.md"
            )
        async with agents.client(ctx) as client:
            return await client.activity(name, source=activity_source, namespace=namespace)

    return MCPServer(
        name="jitgrant", instructions=INSTRUCTIONS, version="0.1.0", lifespan=lifespan, tools=tools
    )


def activity_source_from(args: argparse.Namespace, environ: Mapping[str, str]) -> AuditSource | None:
    """The audit log access_activity reads: the flags `jitgrant activity` takes if `args` has them,
    else the JITGRANT_ACTIVITY_* variables; None when neither names one."""
    audit_log = getattr(args, "audit_log", None) or environ.get(AUDIT_LOG_ENV)
    eks_cluster = getattr(args, "eks_cluster", None) or environ.get(EKS_CLUSTER_ENV)
    if audit_log and eks_cluster:
        raise ValueError(
            f"give the audit log ({AUDIT_LOG_ENV}) or an EKS cluster ({EKS_CLUSTER_ENV}), not both"
        )
    if audit_log:
        return AuditLogFiles(Path(audit_log))
    if not eks_cluster:
        return None
    # boto3 only when an EKS source is configured (region and endpoint: the usual AWS_* variables).
    from jitgrant.activity.cloudwatch import CloudWatchAuditLogs

    return CloudWatchAuditLogs(
        cluster=eks_cluster,
        region=getattr(args, "region", None),
        endpoint_url=getattr(args, "endpoint_url", None),
        log_group=getattr(args, "log_group", None) or environ.get(LOG_GROUP_ENV),
    )


def _args(
    policy: str,
    namespace: str,
    justification: str,
    cluster_role: str | None,
    rules: list[RuleInput] | None,
    duration: str | None,
) -> dict[str, Any]:
    return {
        "policy": policy,
        "namespace": namespace,
        "justification": justification,
        "cluster_role": cluster_role,
        "rules": [rule.to_client() for rule in rules] if rules else None,
        "duration": duration,
    }


async def _follow(
    client: AsyncClient,
    ctx: Context[Any, Any],
    request: AccessRequest,
    *,
    wait_seconds: int,
    kubeconfig_path: str | None,
) -> AccessResult:
    name, namespace = request.metadata.name, request.metadata.namespace or client.namespace

    async def notify(progress: Progress) -> None:
        needed = progress.approvals_needed
        await ctx.report_progress(
            progress=float(progress.approvals),
            total=float(needed) if needed else None,
            message=progress.describe(),
        )

    try:
        grant = await client.wait(name, namespace=namespace, timeout=wait_seconds, on_progress=notify)
    except AccessTimedOut as exc:
        if exc.reason != Reason.WAIT_TIMEOUT:
            raise
        return _result(
            exc.request or request,
            next_step=f"still waiting after {wait_seconds}s and it stays filed: call access_status with "
            f"name={name} and wait_seconds to keep waiting, or release_access to withdraw it",
        )
    written: str | None = None
    text = grant.kubeconfig
    if text is not None and kubeconfig_path:
        written = str(_write_private(Path(kubeconfig_path), text))
        text = None
    step = (
        "use the kubeconfig for the task"
        if (text or written)
        else "use your own credentials: the grant binds you"
    ) + "; call release_access when done"
    return _result(grant.request, kubeconfig=text, kubeconfig_path=written, next_step=step)


def _write_private(path: Path, text: str) -> Path:
    path = path.expanduser()
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def serve(args: argparse.Namespace) -> int:
    """Run the server on stdio or streamable HTTP until interrupted."""
    namespace = getattr(args, "request_namespace", None)
    try:
        activity_source = activity_source_from(args, os.environ)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if (
            args.kubeconfig
            or os.environ.get("KUBECONFIG")
            or not Path("/var/run/secrets/kubernetes.io").exists()
        ):
            base = AsyncClient.from_kubeconfig(args.kubeconfig, context=args.context, namespace=namespace)
        else:
            base = AsyncClient.in_cluster(namespace=namespace)
    except JitgrantError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    if args.transport == "stdio":
        build_server(base, pass_through=False, activity_source=activity_source).run("stdio")
        return 0
    tls_cert, tls_key = getattr(args, "tls_cert", None), getattr(args, "tls_key", None)
    if bool(tls_cert) != bool(tls_key):
        print("error: --tls-cert and --tls-key go together (the certificate and its key)", file=sys.stderr)
        return 2
    loopback = args.host in ("127.0.0.1", "localhost", "::1")
    if not tls_cert and not loopback and not getattr(args, "plain_http", False):
        # Agents send their bearer tokens with every call: never in clear text beyond this host.
        print(
            f"error: --host {args.host} without TLS would carry the agents' bearer tokens in clear text; "
            "pass --tls-cert/--tls-key, or --plain-http if a mesh or proxy in front terminates TLS",
            file=sys.stderr,
        )
        return 2
    import uvicorn

    server = build_server(base, pass_through=True, namespace=namespace, activity_source=activity_source)
    config = uvicorn.Config(
        server.streamable_http_app(host=args.host),
        host=args.host,
        port=args.port,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        log_level="warning",
    )
    uvicorn.Server(config).run()
    return 0
