"""`jitgrant request`: the agent's side. File an AccessRequest, wait for the grant, take the kubeconfig.

Progress goes to stderr, one line per change; stdout carries only the request's name (so a script
can `NAME=$(jitgrant request ...)`). The exit code says how it ended, so an agent can branch on it
without parsing text; see EXIT_CODES_HELP.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3.exceptions
from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from jitgrant.cli.requests import (
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    client_from_args,
    describe_api_error,
    namespace_from_args,
    scope_of,
)
from jitgrant.grants.delivery import KUBECONFIG_KEY
from jitgrant.models import API_GROUP, API_VERSION, parse_duration
from jitgrant.models.rbac import PolicyRule
from jitgrant.models.vocabulary import OIDC_TOKEN_ANNOTATION

EXIT_ACTIVE = 0
EXIT_CLUSTER = EXIT_REFUSED  # 4, as for the other commands
EXIT_DENIED = 10
EXIT_TIMED_OUT = 11
EXIT_FAILED = 12
EXIT_ENDED = 13
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
  0   the grant is active (kubeconfig written with --kubeconfig-out); without --wait: filed
  2   usage: a malformed option (the message says which and the expected form)
  4   the API server refused the request or could not be reached (e.g. the webhook refused the
      OIDC token), or the kubeconfig Secret could not be read
  10  denied: by the policy or by an approver (the reason is printed)
  11  timed out: nobody decided within the policy's pendingTimeout, or --timeout passed first
      (the request stays filed)
  12  failed: the operator could not issue the grant (audit unavailable, cluster refused, ...)
  13  revoked, expired or deleted before it could be used
  130 interrupted (the request stays filed)
"""

RULE_FORM = "apiGroups=apps,resources=deployments,verbs=get;patch[,resourceNames=checkout]"
_RULE_KEYS = {
    "apigroups": "apiGroups",
    "resources": "resources",
    "verbs": "verbs",
    "resourcenames": "resourceNames",
}
_REQUIRED_RULE_KEYS = ("apiGroups", "resources", "verbs")
_OUTCOMES = {
    "Denied": (EXIT_DENIED, "denied"),
    "TimedOut": (EXIT_TIMED_OUT, "timed out"),
    "Failed": (EXIT_FAILED, "failed"),
    "Expired": (EXIT_ENDED, "expired before it could be used"),
    "Revoked": (EXIT_ENDED, "revoked before it could be used"),
}
# Until RBAC caches catch up (real clusters), a Secret just made readable may still answer 403.
SECRET_READ_GRACE_SECONDS = 10.0
# The operator's Pending messages, for agents that may not read the GrantPolicy itself.
_WAITING_FOR = re.compile(r"waiting for (?P<needed>\d+) approval")
_COUNTED_OF = re.compile(r"\d+ of (?P<needed>\d+) approval")


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


def build_request(args: argparse.Namespace, *, namespace: str, oidc_token: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "policy": args.policy,
        "namespace": args.grant_namespace,
        "justification": args.reason,
    }
    if args.cluster_role:
        spec["clusterRole"] = args.cluster_role
    else:
        spec["rules"] = [parse_rule(text) for text in args.rule]
    if args.duration:
        parse_duration(args.duration)  # ValueError says what is wrong with it
        spec["duration"] = args.duration
    metadata: dict[str, Any] = {"namespace": namespace}
    if args.name:
        metadata["name"] = args.name
    else:
        metadata["generateName"] = f"{args.policy[:50].rstrip('-.')}-"
    if oidc_token is not None:
        # The webhook verifies it, stamps the requester from it and strips it before storing.
        metadata["annotations"] = {OIDC_TOKEN_ANNOTATION: oidc_token}
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "AccessRequest",
        "metadata": metadata,
        "spec": spec,
    }


@dataclass
class Progress:
    """Prints a line on stderr whenever what the agent is waiting for changes."""

    out: Any
    last: tuple[object, ...] = ()

    def show(self, key: tuple[object, ...], line: str) -> None:
        if key != self.last:
            self.last = key
            print(line, file=self.out, flush=True)


def _approvals_needed(custom: CustomObjectsApi, policy: str, status: Mapping[str, Any]) -> int | None:
    """minApprovals of the policy if the agent may read it, else what the operator's message said."""
    try:
        body = custom.get_cluster_custom_object(API_GROUP, API_VERSION, "grantpolicies", policy)
        return int(((body.get("spec") or {}).get("approval") or {}).get("minApprovals", 1))
    except ApiException:
        message = str(status.get("message") or "")
        found = _WAITING_FOR.search(message) or _COUNTED_OF.search(message)
        return int(found.group("needed")) if found else None


def _pending_line(obj: Mapping[str, Any], needed: int | None) -> tuple[tuple[object, ...], str]:
    """Approvals as the operator counted them (status.approvals: valid receipts, eligible people)."""
    status = obj.get("status") or {}
    approvers = sorted({str(entry.get("approver")) for entry in status.get("approvals") or []})
    have = len(approvers)
    if needed is None:
        text = f"pending approval: {have} counted so far"
    else:
        text = f"pending approval: {max(needed - have, 0)} more approval(s) needed ({have} of {needed})"
    if approvers:
        text += f"; approved by {', '.join(approvers)}"
    return ("Pending", have), text


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


def _read_kubeconfig(core: CoreV1Api, namespace: str, secret: str) -> str:
    deadline = time.monotonic() + SECRET_READ_GRACE_SECONDS
    while True:
        try:
            body = core.read_namespaced_secret(secret, namespace)
            break
        except ApiException as exc:
            if exc.status not in (403, 404) or time.monotonic() > deadline:
                raise CliError(
                    f"the grant is active but its kubeconfig Secret {namespace}/{secret} could not be read: "
                    f"{describe_api_error(exc)}"
                ) from exc
            time.sleep(0.5)
    encoded = (body.data or {}).get(KUBECONFIG_KEY)
    if not encoded:
        raise CliError(f"Secret {namespace}/{secret} has no {KUBECONFIG_KEY!r} key")
    return base64.b64decode(encoded).decode()


def wait_for_grant(
    client: ApiClient,
    *,
    namespace: str,
    name: str,
    policy: str,
    timeout: float,
    kubeconfig_out: Path | None,
    poll_interval: float = 0.5,
    err: Any = None,
) -> int:
    """Follow the request until it is active or ends; the exit code says which."""
    err = err or sys.stderr
    custom, core = CustomObjectsApi(client), CoreV1Api(client)
    progress = Progress(out=err)
    deadline = time.monotonic() + timeout
    needed: int | None = None
    while True:
        try:
            obj = custom.get_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, "accessrequests", name
            )
        except ApiException as exc:
            if exc.status == 404:
                print(f"AccessRequest {namespace}/{name} was deleted before it could be used", file=err)
                return EXIT_ENDED
            raise
        status = obj.get("status") or {}
        phase, reason, message = status.get("phase"), status.get("reason"), status.get("message") or ""
        if phase is None:
            progress.show((None,), "waiting for the operator to decide...")
        elif phase == "Pending":
            if needed is None:
                needed = _approvals_needed(custom, policy, status)
            key, line = _pending_line(obj, needed)
            progress.show(key, line)
        elif phase == "Approved":
            if reason in ("Approved", "AutoApproved"):
                progress.show((phase, reason), f"approved ({message}); the operator is issuing the grant")
            else:  # the target cluster is not reachable yet; the operator retries
                progress.show((phase, reason), f"approved, not active yet: {reason}: {message}")
        elif phase == "Active":
            expires = status.get("expiresAt")
            progress.show((phase,), f"active until {expires}: {message}")
            return _deliver(core, obj, namespace=namespace, kubeconfig_out=kubeconfig_out, err=err)
        elif phase in _OUTCOMES:
            code, what = _OUTCOMES[phase]
            print(f"{what}: {reason}: {message}", file=err)
            return code
        if time.monotonic() > deadline:
            print(
                f"timed out: gave up waiting after {timeout:.0f}s; AccessRequest {namespace}/{name} is still "
                f"{phase or 'undecided'} and stays filed (`jitgrant get {name} -n {namespace}` shows it)",
                file=err,
            )
            return EXIT_TIMED_OUT
        time.sleep(poll_interval)


def _deliver(
    core: CoreV1Api, obj: Mapping[str, Any], *, namespace: str, kubeconfig_out: Path | None, err: Any
) -> int:
    if kubeconfig_out is None:
        return EXIT_ACTIVE
    grant = (obj.get("status") or {}).get("grant") or {}
    secret = grant.get("kubeconfigSecret")
    if not secret:
        who = ((obj.get("spec") or {}).get("requester") or {}).get("username", "your identity")
        print(
            f"no kubeconfig was issued: the grant binds {who} itself, so use the credentials you "
            f"already have; {kubeconfig_out} was not written",
            file=err,
        )
        return EXIT_ACTIVE
    write_private_file(kubeconfig_out, _read_kubeconfig(core, namespace, secret))
    print(
        f"kubeconfig written to {kubeconfig_out} (mode 0600, context namespace {grant.get('namespace')})",
        file=err,
    )
    return EXIT_ACTIVE


def cmd_request(args: argparse.Namespace) -> int:
    err = sys.stderr
    try:
        if args.kubeconfig_out and not args.wait:
            raise CliError(
                "--kubeconfig-out needs --wait (the kubeconfig exists only once the grant is active)",
                EXIT_USAGE,
            )
        try:
            timeout = parse_duration(args.timeout).total_seconds()
        except ValueError as exc:
            raise CliError(f"--timeout: {exc}", EXIT_USAGE) from exc
        token = read_oidc_token(args.oidc_token_file) if args.oidc_token_file else None
        try:
            manifest = build_request(args, namespace="", oidc_token=token)
        except RuleError as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
        except ValueError as exc:
            raise CliError(f"--for: {exc}", EXIT_USAGE) from exc
        args.namespace = args.request_namespace
        namespace = namespace_from_args(args)
        manifest["metadata"]["namespace"] = namespace
        client = client_from_args(args)
    except CliError as exc:
        print(f"error: {exc}", file=err)
        return exc.code
    try:
        try:
            created = CustomObjectsApi(client).create_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, "accessrequests", manifest
            )
        except ApiException as exc:
            print(f"error: the AccessRequest was not filed: {describe_api_error(exc)}", file=err)
            return EXIT_CLUSTER
        name = created["metadata"]["name"]
        requester = (created["spec"].get("requester") or {}).get("username", "?")
        print(name, flush=True)
        print(
            f"filed AccessRequest {namespace}/{name} as {requester}: {scope_of(created['spec'])}, "
            f"policy {args.policy}",
            file=err,
            flush=True,
        )
        if not args.wait:
            return EXIT_ACTIVE
        return wait_for_grant(
            client,
            namespace=namespace,
            name=name,
            policy=args.policy,
            timeout=timeout,
            kubeconfig_out=Path(args.kubeconfig_out) if args.kubeconfig_out else None,
            err=err,
        )
    except CliError as exc:
        print(f"error: {exc}", file=err)
        return exc.code
    except ApiException as exc:
        print(f"error: {describe_api_error(exc)}", file=err)
        return EXIT_CLUSTER
    except urllib3.exceptions.HTTPError as exc:
        print(f"error: cannot reach the API server at {client.configuration.host} ({exc})", file=err)
        return EXIT_CLUSTER
    except KeyboardInterrupt:
        print("interrupted; the request stays filed", file=err)
        return EXIT_INTERRUPTED
    finally:
        client.close()


def add_request_subcommand(sub: Any) -> None:
    p = sub.add_parser(
        "request",
        help="file an AccessRequest (as an agent) and optionally wait for the grant",
        description="File an AccessRequest and, with --wait, follow it until the grant is active; "
        "then write the kubeconfig of a delivered grant with --kubeconfig-out.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--policy", required=True, help="the GrantPolicy to request under")
    p.add_argument(
        "--namespace", dest="grant_namespace", required=True, metavar="N", help="where the grant lands"
    )
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument("--cluster-role", metavar="R", help="a grantable ClusterRole the policy offers")
    scope.add_argument(
        "--rule",
        action="append",
        metavar="RULE",
        help=f"an inline rule, repeatable: '{RULE_FORM}'",
    )
    p.add_argument("--for", dest="duration", metavar="DURATION", help="e.g. 10m (default: the policy's)")
    p.add_argument(
        "--reason", required=True, help="the justification (INC-123 ...); approvers and the audit read it"
    )
    p.add_argument(
        "-n",
        "--request-namespace",
        default=None,
        metavar="NS",
        help="where the AccessRequest is filed (default: the kubeconfig context's namespace)",
    )
    p.add_argument("--name", help="the request's name (default: generated from the policy's)")
    p.add_argument(
        "--oidc-token-file", metavar="F", help="prove yourself with this OIDC ID token ('-' reads stdin)"
    )
    p.add_argument("--wait", action="store_true", help="wait until the grant is active or the request ends")
    p.add_argument("--timeout", default="30m", help="with --wait: give up after this long (default 30m)")
    p.add_argument(
        "--kubeconfig-out", metavar="FILE", help="with --wait: write a delivered kubeconfig here (0600)"
    )
    p.add_argument("--kubeconfig", default=None, help="your kubeconfig for the operator's cluster")
    p.set_defaults(func=cmd_request)
