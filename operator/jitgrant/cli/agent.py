"""`jitgrant request`: the agent's side. File an AccessRequest, wait for the grant, take the kubeconfig.

Progress goes to stderr, one line per change; stdout carries only the request's name (so a script
can `NAME=$(jitgrant request ...)`). The exit code says how it ended, so an agent can branch on it
without parsing text; see EXIT_CODES_HELP.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from jitgrant.cli.exitcodes import ExitCode
from jitgrant.cli.kubeconfig import connection_from_args
from jitgrant.cli.output import as_list, custom_columns, render_structured
from jitgrant.cli.parsers import RULE_FORM
from jitgrant.cli.requests import (
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    CliError,
    Table,
    namespace_from_args,
    scope_of,
    wait_timeout,
)
from jitgrant.client import (
    AccessDenied,
    AccessEnded,
    AccessFailed,
    AccessTimedOut,
    ApiRefused,
    ApiUnreachable,
    AsyncClient,
    Client,
    JitgrantError,
    Progress,
    RequestNotFound,
    ending_words,
)
from jitgrant.models import AccessRequest, Phase, parse_duration
from jitgrant.models.rbac import PolicyRule
from jitgrant.models.text import for_terminal
from jitgrant.models.vocabulary import Reason

# The shared table (cli/exitcodes.py): the same code means the same thing for every command.
EXIT_ACTIVE = int(ExitCode.OK)
EXIT_CLUSTER = int(ExitCode.REFUSED)
EXIT_DENIED = int(ExitCode.DENIED)
EXIT_TIMED_OUT = int(ExitCode.TIMED_OUT)
EXIT_FAILED = int(ExitCode.FAILED)
EXIT_ENDED = int(ExitCode.ENDED)
EXIT_INTERRUPTED = int(ExitCode.INTERRUPTED)

_RULE_KEYS = {
    "apigroups": "apiGroups",
    "resources": "resources",
    "verbs": "verbs",
    "resourcenames": "resourceNames",
}
_REQUIRED_RULE_KEYS = ("apiGroups", "resources", "verbs")


class RuleError(ValueError):
    """A --rule that does not parse; the message names the part and the expected form."""


def parse_rule(text: str) -> dict[str, list[str]]:
    """`apiGroups=apps,resources=deployments,verbs=get;patch,resourceNames=checkout` as an RBAC rule.

    Pairs are separated by ",", list items by ";". `apiGroups=` (empty) is the core group.
    """

    def refuse(problem: str) -> RuleError:
        return RuleError(
            f"--rule {text!r}: {problem}; expected --rule '{RULE_FORM}' (items separated by ';', "
            "an empty apiGroups= for the core group)"
        )

    rule: dict[str, list[str]] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise refuse(f"part {part.strip()!r} is not key=value")
        name = _RULE_KEYS.get(key.strip().lower())
        if name is None:
            raise refuse(f"unknown key {key.strip()!r} (known: {', '.join(_RULE_KEYS.values())})")
        if name in rule:
            raise refuse(f"{name} is given twice (list several values with ';')")
        items = [item.strip() for item in value.split(";")]
        if name == "apiGroups":
            items = ["" if item in ("", '""', "''") else item for item in items]
        elif any(not item for item in items):
            raise refuse(f"{name}={value.strip()!r} has an empty item")
        rule[name] = items
    missing = [key for key in _REQUIRED_RULE_KEYS if key not in rule]
    if missing:
        raise refuse(f"{' and '.join(missing)} missing")
    try:
        PolicyRule.model_validate(rule)
    except ValidationError as exc:  # pragma: no cover - the checks above are stricter
        raise refuse(str(exc.errors()[0]["msg"])) from exc
    return rule


def read_oidc_token(path: str) -> str:
    """The ID token from a file (or "-" for stdin), stripped. It is never printed."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise CliError(f"--oidc-token-file {path}: {exc.strerror or exc}", EXIT_USAGE) from exc
    token = text.strip()
    if not token:
        raise CliError(f"--oidc-token-file {path} is empty", EXIT_USAGE)
    if token.count(".") != 2:
        raise CliError(f"--oidc-token-file {path} does not hold a JWT (header.payload.signature)", EXIT_USAGE)
    return token


def write_private_file(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600, atomically: it holds a bearer token."""
    path = path.expanduser()
    directory = path.parent if str(path.parent) else Path(".")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    os.chmod(path, 0o600)


def agent_client(args: argparse.Namespace, *, namespace: str, blocking: bool = False) -> Client:
    """The jitgrant client for the identity the kubeconfig flags name (one path with the MCP server),
    or for whom --as (or the kubeconfig user's `as`) impersonates; the API server checks the
    caller's `impersonate` permission on every call and answers 403 without it."""
    return Client(AsyncClient(connection_from_args(args, namespace=namespace, blocking=blocking)))


def _show(err: Any) -> Callable[[Progress], None]:
    def show(progress: Progress) -> None:
        if progress.phase is not None and Phase(progress.phase).terminal:
            return  # the ending is said once, with its exit code's words, by wait_for_grant
        print(for_terminal(progress.describe()), file=err, flush=True)

    return show


def _ended(exc: JitgrantError) -> tuple[int, str]:
    """Exit code and line for a request that ended without a usable grant."""
    request = exc.request
    if isinstance(exc, AccessTimedOut) and exc.reason == Reason.WAIT_TIMEOUT:
        return EXIT_TIMED_OUT, f"timed out: {exc.message}"
    if isinstance(exc, AccessEnded) and (request is None or exc.reason == Reason.DELETED):
        return EXIT_ENDED, exc.message
    words = ending_words(request) if request is not None else "ended"
    code = {AccessDenied: EXIT_DENIED, AccessTimedOut: EXIT_TIMED_OUT, AccessFailed: EXIT_FAILED}.get(
        type(exc), EXIT_ENDED
    )
    return code, f"{words}: {exc.reason}: {exc.message}"


def wait_for_grant(
    client: Client, *, namespace: str, name: str, timeout: float, kubeconfig_out: Path | None, err: Any
) -> int:
    """Follow the request (a watch, resumed on drops) until it is active or ends; the exit code says which."""
    try:
        grant = client.wait(
            name,
            namespace=namespace,
            timeout=timeout,
            on_progress=_show(err),
            deliver=kubeconfig_out is not None,
        )
    except (AccessDenied, AccessTimedOut, AccessFailed, AccessEnded) as exc:
        code, line = _ended(exc)
        print(for_terminal(line), file=err)  # an approver's reason may be in it
        return code
    if kubeconfig_out is None:
        return EXIT_ACTIVE
    if grant.kubeconfig is None:
        stamp = grant.request.spec.requester
        who = stamp.username if stamp is not None else "your identity"
        print(
            f"no kubeconfig was issued: the grant binds {who} itself, so use the credentials you "
            f"already have; {kubeconfig_out} was not written",
            file=err,
        )
        return EXIT_ACTIVE
    write_private_file(kubeconfig_out, grant.kubeconfig)
    target = grant.request.status.grant
    print(
        f"kubeconfig written to {kubeconfig_out} (mode 0600, context namespace "
        f"{target.namespace if target else grant.request.spec.namespace})",
        file=err,
    )
    return EXIT_ACTIVE


def _check(client: Client, kwargs: dict[str, Any], err: Any) -> int:
    """`--dry-run`: the operator's decision, nothing filed. Exit 0 if it would be filed and allowed or
    wait for approval, 10 if it would be denied."""
    result = client.check(**kwargs)
    print(result.outcome, flush=True)
    print(for_terminal(f"{result.outcome}: {result.reason}: {result.message}"), file=err)
    return EXIT_DENIED if result.outcome == "denied" else EXIT_ACTIVE


def _justification(args: argparse.Namespace, err: Any) -> str:
    """--justification, or its deprecated spelling --reason (with a warning); usage error if neither."""
    given: str | None = args.justification
    if args.deprecated_reason is not None:
        print("warning: --reason is deprecated (removed in 0.2): use --justification", file=err)
        if given is not None and given != args.deprecated_reason:
            raise CliError("give --justification once (--reason is its deprecated spelling)", EXIT_USAGE)
        given = args.deprecated_reason
    if not given or not given.strip():
        raise CliError(
            "--justification is required: why you need the access, e.g. --justification 'INC-4711 "
            "checkout pods stuck' (approvers and the audit trail read it)",
            EXIT_USAGE,
        )
    return given


def cmd_request(args: argparse.Namespace) -> int:
    err = sys.stderr
    try:
        if args.kubeconfig_out and not args.wait:
            raise CliError(
                "--kubeconfig-out needs --wait (the kubeconfig exists only once the grant is active)",
                EXIT_USAGE,
            )
        if args.dry_run != "none" and (args.wait or args.kubeconfig_out):
            raise CliError(
                "--dry-run files nothing, so it takes neither --wait nor --kubeconfig-out", EXIT_USAGE
            )
        try:
            timeout = parse_duration(wait_timeout(args)).total_seconds()
        except ValueError as exc:
            raise CliError(f"--wait-timeout: {exc}", EXIT_USAGE) from exc
        justification = _justification(args, err)
        token = read_oidc_token(args.oidc_token_file) if args.oidc_token_file else None
        try:
            rules = [parse_rule(text) for text in args.rule or ()]
            if args.duration:
                parse_duration(args.duration)
        except RuleError as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
        except ValueError as exc:
            raise CliError(f"--for: {exc}", EXIT_USAGE) from exc
        args.namespace = args.request_namespace
        namespace = namespace_from_args(args)
        client = agent_client(args, namespace=namespace)
    except CliError as exc:
        print(f"error: {exc}", file=err)
        return exc.code
    kwargs: dict[str, Any] = {
        "policy": args.policy,
        "namespace": args.grant_namespace,
        "justification": justification,
        "cluster_role": args.cluster_role,
        "rules": rules or None,
        "duration": args.duration,
        "oidc_token": token,
        "request_key": getattr(args, "request_key", None),
    }
    try:
        if args.dry_run == "client":
            # Never the OIDC token: it is a credential, and the webhook strips it before storing.
            manifest = client.aio.manifest(name=args.name, **{**kwargs, "oidc_token": None})
            print(render_structured(manifest, args.output or "yaml") or "", end="", flush=True)
            return EXIT_ACTIVE
        if args.dry_run == "server":
            return _check(client, kwargs, err)
        try:
            created = client.request(name=args.name, **kwargs)
        except ApiRefused as exc:
            print(f"error: the AccessRequest was not filed: {for_terminal(exc.message)}", file=err)
            return EXIT_CLUSTER
        name = created.metadata.name
        requester = created.spec.requester.username if created.spec.requester else "?"
        print(_rendered(created, args.output) or name, flush=True)
        spec = created.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        print(
            f"filed AccessRequest {namespace}/{name} as {requester}: {scope_of(spec)}, policy {args.policy}",
            file=err,
            flush=True,
        )
        if not args.wait:
            return EXIT_ACTIVE
        return wait_for_grant(
            client,
            namespace=namespace,
            name=name,
            timeout=timeout,
            kubeconfig_out=Path(args.kubeconfig_out) if args.kubeconfig_out else None,
            err=err,
        )
    except (ApiRefused, ApiUnreachable, JitgrantError) as exc:
        print(f"error: {for_terminal(exc.message)}", file=err)
        return EXIT_CLUSTER
    except KeyboardInterrupt:
        print("interrupted; the request stays filed", file=err)
        return EXIT_INTERRUPTED
    finally:
        client.close()


def cmd_release(args: argparse.Namespace) -> int:
    """`jitgrant release NAME`: the requester ends its own grant now (reason Released)."""
    err = sys.stderr
    try:
        args.namespace = args.request_namespace
        namespace = namespace_from_args(args)
        client = agent_client(args, namespace=namespace)
    except CliError as exc:
        print(f"error: {exc}", file=err)
        return exc.code
    try:
        ended = client.release(args.name, namespace=namespace, reason=args.reason or "")
    except RequestNotFound as exc:
        print(f"error: {for_terminal(exc.message)}", file=err)
        return EXIT_NOT_FOUND
    except JitgrantError as exc:
        print(f"error: {for_terminal(exc.message)}", file=err)
        return EXIT_CLUSTER
    finally:
        client.close()
    rendered = _rendered(ended, args.output)
    if rendered is not None:
        print(rendered)
        return EXIT_ACTIVE
    status = ended.status
    phase = status.phase.value if status.phase else "releasing"
    print(f"{namespace}/{args.name}: {phase}: {for_terminal(status.message or '')}")
    return EXIT_ACTIVE


def _rendered(request: AccessRequest, fmt: str | None) -> str | None:
    """The object in an -o format (json/yaml keep others' text as data; the others are read as lines,
    so they are shown escaped); None for the command's usual line."""
    if fmt is None or fmt == "table":
        return None
    obj = request.model_dump(mode="json", by_alias=True, exclude_none=True)
    if fmt == "wide":
        buffer = io.StringIO()
        Table(namespaced=False, wide=True, out=buffer).print([obj])
        return buffer.getvalue().rstrip("\n")
    if fmt.startswith("custom-columns="):
        text: str | None = custom_columns(fmt.partition("=")[2], [obj])
    else:
        text = render_structured(obj, fmt)
    if text is None:
        return None
    text = text.rstrip("\n")
    return text if fmt in ("json", "yaml") else _lines(text)


def _lines(text: str) -> str:
    """Text others wrote, shown line by line with its control characters escaped."""
    return "\n".join(for_terminal(line) for line in text.split("\n"))


def cmd_policies(args: argparse.Namespace) -> int:
    """`jitgrant policies`: what this identity may request, matched by the operator's requester code."""
    err = sys.stderr
    try:
        client = agent_client(args, namespace="default", blocking=True)  # read-only: no aiohttp
    except CliError as exc:
        print(f"error: {exc}", file=err)
        return exc.code
    try:
        found = client.grantable()
    except JitgrantError as exc:
        print(f"error: {for_terminal(exc.message)}", file=err)
        return EXIT_CLUSTER
    finally:
        client.close()
    items = [g.model_dump(mode="json", by_alias=True) for g in found]
    if args.output == "json":  # an array, as 0.1 printed it
        print(json.dumps(items, indent=2))
        return EXIT_ACTIVE
    if args.output == "name":
        print("".join(f"grantpolicy.jitgrant.dev/{g.policy}\n" for g in found), end="")
        return EXIT_ACTIVE
    if args.output.startswith("custom-columns="):
        print(_lines(custom_columns(args.output.partition("=")[2], items)), end="")
        return EXIT_ACTIVE
    if args.output != "text":
        text = render_structured(as_list(items), args.output) or ""
        print(text if args.output == "yaml" else _lines(text), end="")
        return EXIT_ACTIVE
    if not found:
        print("no GrantPolicy names you as a requester", file=err)
        return EXIT_ACTIVE
    for g in found:
        grants = ", ".join(g.cluster_roles) + (" + inline rules" if g.rule_shapes else "")
        approval = (
            f"{g.approval.min_approvals} approval(s) from "
            + " or ".join(
                part
                for part in (
                    f"groups {', '.join(g.approval.approver_groups)}" if g.approval.approver_groups else "",
                    f"users {', '.join(g.approval.approver_users)}" if g.approval.approver_users else "",
                )
                if part
            )
            if g.approval.required
            else "no approval"
        )
        justification = (
            f"justification matching '{g.justification_pattern}'"
            if g.justification_pattern
            else ("justification required" if g.justification_required else "no justification needed")
        )
        # Marked first: a request under a policy that is not Ready ends Failed.
        mark = (
            f"NOT READY ({g.ready_reason}: {g.ready_message}) "
            if g.ready is False
            else ("not judged yet " if g.ready is None else "")
        )
        print(
            for_terminal(
                f"{g.policy}: {mark}{grants} in {', '.join(g.namespaces)} on {g.cluster}; up to "
                f"{g.max_duration} (default {g.default_duration}); {approval}; {justification}"
            )
        )
    return EXIT_ACTIVE


def cmd_mcp(args: argparse.Namespace) -> int:
    """`jitgrant mcp`: the MCP server (needs the `mcp` extra)."""
    try:
        from jitgrant.mcp import serve
    except ImportError as exc:
        print(f"error: jitgrant mcp needs the MCP SDK: pip install 'jitgrant[mcp]' ({exc})", file=sys.stderr)
        return EXIT_USAGE
    return serve(args)
