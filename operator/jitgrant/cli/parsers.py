"""Every cluster command's flags, built without importing the code that runs it.

`jitgrant --help`, `jitgrant COMMAND --help`, completion and usage errors need only the parser; the
Kubernetes client, the jitgrant client (aiohttp) and boto3 cost about a second to import. So each
command is named here as a `Command` (module and function) and imported when it runs; the modules
that run them (requests.py, agent.py, activity.py) import what they need at their top, as usual.
tests/cli/test_light_imports.py fails if the parser starts importing them again.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jitgrant.cli.exitcodes import EXIT_CODES_HELP
from jitgrant.cli.kubeconfig import add_cluster_flags
from jitgrant.cli.output import add_output_flag, output_format

RULE_FORM = "apiGroups=apps,resources=deployments,verbs=get;patch[,resourceNames=checkout]"

ACTIVITY_DESCRIPTION = """\
What the agent did with its grant, from the API server's audit log.

Every call the grant's RoleBinding allowed, and every call by the grant's identity during its window
that was refused or allowed by something else, in time order, each saying how it was tied to the
grant: exactly (the API server's authorization reason names the grant's RoleBinding) or by identity
and window. Sources, attribution and limits: docs/audit.md.
"""


@dataclass(frozen=True)
class Command:
    """`jitgrant.cli.<module>.<function>`, imported on the first call."""

    module: str
    function: str

    def load(self) -> Callable[[argparse.Namespace], int]:
        found: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module(f"jitgrant.cli.{self.module}"), self.function
        )
        return found

    def __call__(self, args: argparse.Namespace) -> int:
        return self.load()(args)


def add_read_flags(parser: argparse.ArgumentParser) -> None:
    add_output_flag(parser)
    parser.add_argument(
        "-w",
        "--watch",
        action="store_true",
        help="after printing, follow changes (until --request-timeout, as kubectl's watch)",
    )


def add_wait_timeout(parser: argparse.ArgumentParser, *, default: str, help_text: str) -> None:
    """--wait-timeout (how long --wait waits); --timeout, its old spelling, is deprecated because
    kubectl's --request-timeout is per call and the two were easily confused."""
    parser.add_argument("--wait-timeout", default=default, metavar="DURATION", help=help_text)
    parser.add_argument("--timeout", dest="deprecated_timeout", default=None, help=argparse.SUPPRESS)


def add_request_subcommands(sub: Any, *, epilog: str = "") -> None:
    """The people's commands: list, get, approve, deny, revoke (requests.py runs them)."""

    def parser(name: str, help_text: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(  # type: ignore[no-any-return]
            name,
            help=help_text,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            **kwargs,
        )

    p = parser("list", "list AccessRequests as a table")
    add_cluster_flags(p)
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-l", "--selector", default=None, help="label selector, e.g. team=payments,tier!=prod")
    p.add_argument("--pending", action="store_true", help="only Pending requests you may approve or deny")
    add_read_flags(p)
    p.set_defaults(func=Command("requests", "cmd_list"))

    p = parser("get", "show one AccessRequest as a row (describe: the prose view)")
    p.add_argument("name")
    add_cluster_flags(p)
    add_read_flags(p)
    p.set_defaults(func=Command("requests", "cmd_get"))

    p = parser("describe", "describe one AccessRequest: who asks, why, for what, approvals missing")
    p.add_argument("name")
    add_cluster_flags(p)
    p.set_defaults(func=Command("requests", "cmd_describe"))

    p = parser("approve", "approve a pending request (as yourself)")
    p.add_argument("name")
    add_cluster_flags(p)
    p.add_argument("--reason", default="")
    _object_output_flag(p, "the AccessRequest as approved")
    p.set_defaults(func=Command("requests", "cmd_approve"))

    p = parser("deny", "deny a pending request")
    p.add_argument("name")
    add_cluster_flags(p)
    p.add_argument("--reason", required=False)
    _object_output_flag(p, "the AccessRequest as denied")
    p.set_defaults(func=Command("requests", "cmd_deny"))

    p = parser("revoke", "end a grant now")
    p.add_argument("name", nargs="?")
    add_cluster_flags(p)
    p.add_argument("--reason", required=False)
    p.add_argument("--all", action="store_true", help="revoke every live request (uninstall hook)")
    p.add_argument("--wait", action="store_true", help="with --all: wait until every grant has ended")
    add_wait_timeout(p, default="5m", help_text="with --wait: give up after this long (default 5m)")
    _object_output_flag(p, "the AccessRequest as revoked")
    p.set_defaults(func=Command("requests", "cmd_revoke"))


def _request_namespace_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "-n",
        "--namespace",
        "--request-namespace",
        dest="request_namespace",
        default=None,
        metavar="NS",
        help=help_text,
    )


def _object_output_flag(p: argparse.ArgumentParser, what: str) -> None:
    """-o for a command that writes one object: kubectl's object formats; unset, the usual line."""
    p.add_argument(
        "-o",
        "--output",
        type=output_format,
        default=None,
        metavar="FORMAT",
        help=f"print {what} as json, yaml, name, wide, jsonpath=TEMPLATE or custom-columns=SPEC "
        "(kubectl's shapes)",
    )


def add_agent_subcommands(sub: Any) -> None:
    """The agent's commands: request, release, policies, mcp (agent.py runs them)."""
    p = sub.add_parser(
        "request",
        help="file an AccessRequest (as an agent) and optionally wait for the grant",
        description="File an AccessRequest and, with --wait, follow it until the grant is active; "
        "then write the kubeconfig of a delivered grant with --kubeconfig-out. With --as, an identity "
        "allowed to impersonate files it as someone else (the requester is who is impersonated).",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--policy", required=True, help="the GrantPolicy to request under")
    p.add_argument(
        "--target-namespace",
        dest="grant_namespace",
        required=True,
        metavar="NS",
        help="where the grant lands (one of the policy's namespaces)",
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
        "--justification",
        metavar="TEXT",
        help="required: why (INC-123 ...); approvers and the audit read it (spec.justification)",
    )
    # The spelling 0.1 shipped; deprecated, removed in 0.2 (cmd_request says so when it is used).
    p.add_argument("--reason", dest="deprecated_reason", help=argparse.SUPPRESS)
    _object_output_flag(p, "the created AccessRequest")
    _request_namespace_flag(
        p, "where the AccessRequest is filed (default: the kubeconfig context's namespace)"
    )
    p.add_argument("--name", help="the request's name (default: generated from the policy's)")
    p.add_argument(
        "--request-key",
        help="idempotency key (spec.requestKey): while a request filed with it is open, the same key "
        "returns that request (default: derived from the arguments, so a repeated command is one request)",
    )
    p.add_argument(
        "--oidc-token-file",
        metavar="F",
        help="prove yourself with this OIDC token: an ID token, or a machine client's JWT access token "
        "('-' reads stdin)",
    )
    p.add_argument("--wait", action="store_true", help="wait until the grant is active or the request ends")
    add_wait_timeout(p, default="30m", help_text="with --wait: give up after this long (default 30m)")
    p.add_argument(
        "--kubeconfig-out", metavar="FILE", help="with --wait: write a delivered kubeconfig here (0600)"
    )
    p.add_argument(
        "--dry-run",
        nargs="?",
        const="server",
        default="none",
        choices=("none", "server", "client"),
        help="server (or bare --dry-run): ask the operator whether this would be allowed, wait for "
        "approval, or be denied, and why; "
        "nothing is filed or audited (exit 0, or 10 if it would be denied); client: print the "
        "AccessRequest that would be sent",
    )
    add_cluster_flags(p, namespace=False)
    p.set_defaults(func=Command("agent", "cmd_request"))

    r = sub.add_parser(
        "release",
        help="end your own grant now (as its requester); recorded as Released, not as a revoke",
        allow_abbrev=False,
    )
    r.add_argument("name", help="the AccessRequest's name")
    r.add_argument("--reason", default="", help="why (recorded in status, the Event and the audit trail)")
    _object_output_flag(r, "the released AccessRequest")
    _request_namespace_flag(r, "where it is (default: the kubeconfig context's namespace)")
    add_cluster_flags(r, namespace=False)
    r.set_defaults(func=Command("agent", "cmd_release"))

    x = sub.add_parser(
        "extend",
        help="ask to extend your own Active grant (an extension request under its policy's spec.extensions)",
        description="Ask to extend your Active grant NAME by --by, with the same scope; the policy "
        "decides whether extensions are allowed, how many, the total, and whether approvers must agree. "
        "Waits until it is applied (the new end is printed) or refused.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    x.add_argument("name", help="your Active AccessRequest")
    x.add_argument("--by", required=True, metavar="DURATION", help="how much longer, e.g. 10m")
    x.add_argument("--justification", metavar="TEXT", help="required: why it must last longer")
    x.add_argument(
        "--dry-run",
        action="store_true",
        help="ask the operator whether the extension would be applied, wait for approval, or be refused",
    )
    _request_namespace_flag(x, "where it is (default: the kubeconfig context's namespace)")
    add_wait_timeout(x, default="30m", help_text="give up waiting after this long (default 30m)")
    add_cluster_flags(x, namespace=False)
    x.set_defaults(func=Command("extend", "cmd_extend"))

    q = sub.add_parser("policies", help="the GrantPolicies you may request under, and what each offers")
    q.add_argument(
        "-o",
        "--output",
        type=_policies_format,
        default="text",
        metavar="FORMAT",
        help="text (default), json (an array), yaml, name, jsonpath=TEMPLATE (over a kind: List) or "
        "custom-columns=SPEC",
    )
    add_cluster_flags(q, namespace=False)
    q.set_defaults(func=Command("agent", "cmd_policies"))

    m = sub.add_parser(
        "mcp",
        help="serve the agent tools over the Model Context Protocol (stdio, or streamable HTTP)",
        description="An MCP server with list_grantable, check_access, request_access, access_status, "
        "release_access, list_my_requests and access_activity. stdio acts as your kubeconfig's "
        "identity; http acts, call by call, as whoever's bearer token the MCP client sends "
        "(never as the server).",
    )
    m.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    m.add_argument("--host", default="127.0.0.1", help="http: address to listen on")
    m.add_argument("--tls-cert", metavar="FILE", help="http: serve HTTPS with this certificate (PEM)")
    m.add_argument("--tls-key", metavar="FILE", help="http: the certificate's private key (PEM)")
    m.add_argument(
        "--plain-http",
        action="store_true",
        help="http: listen beyond loopback without TLS (only behind a proxy or mesh that terminates it)",
    )
    m.add_argument("--port", type=int, default=8765, help="http: port to listen on")
    _request_namespace_flag(m, "where filed")
    m.add_argument("--kubeconfig", default=None, help="stdio: your kubeconfig; http: where the API server is")
    m.add_argument("--context", default=None, help="the kubeconfig context to use")
    # Optional: without a source (or its JITGRANT_ACTIVITY_* variable) access_activity says so.
    add_activity_source_flags(m, required=False)
    m.set_defaults(func=Command("agent", "cmd_mcp"))


def _policies_format(text: str) -> str:
    return text if text == "text" else output_format(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--interval takes a positive number of seconds, got {text!r}")
    return value


def add_activity_source_flags(p: argparse.ArgumentParser, *, required: bool) -> None:
    """Where the cluster's audit log is read from (`activity`, and `mcp`'s access_activity tool)."""
    source = p.add_mutually_exclusive_group(required=required)
    source.add_argument(
        "--audit-log",
        type=Path,
        metavar="PATH",
        help="kube-apiserver's --audit-log-path file (its rotated copies are read too) or their directory",
    )
    source.add_argument("--eks-cluster", metavar="NAME", help="read /aws/eks/NAME/cluster in CloudWatch Logs")
    p.add_argument("--log-group", help="with --eks-cluster: another log group name")
    p.add_argument("--region", help="with --eks-cluster: the AWS region")
    p.add_argument("--endpoint-url", help="with --eks-cluster: an AWS endpoint (a VPC endpoint, or moto)")


def add_activity_subcommand(sub: Any) -> None:
    p = sub.add_parser(
        "activity",
        help="what the agent did with a grant: allowed and refused API calls, from the audit log",
        description=ACTIVITY_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", help="the AccessRequest")
    add_cluster_flags(p)
    add_activity_source_flags(p, required=True)
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    p.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new calls while the grant is active"
    )
    p.add_argument(
        "--interval", type=_seconds, default=2.0, help="with --follow: seconds between reads (default 2)"
    )
    p.set_defaults(func=Command("activity", "run_activity"))


def add_receiver_subcommand(sub: Any) -> None:
    p = sub.add_parser(
        "activity-receiver",
        help="receive the API server's audit webhook backend into a log `activity --audit-log` reads",
        description="Listen for the audit.k8s.io EventLists kube-apiserver posts with "
        "--audit-webhook-config-file, and append them, fsynced before answering, to --audit-log "
        "(rotated like kube-apiserver's own log). The API server must prove itself: a bearer token "
        "(--token-file) or a client certificate (--client-ca); beyond loopback only over TLS.",
    )
    p.add_argument("--audit-log", type=Path, required=True, metavar="PATH", help="the file to write")
    p.add_argument("--listen", default="127.0.0.1", metavar="HOST", help="address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8443, help="port (default 8443; 0 picks a free one)")
    p.add_argument(
        "--token-file", type=Path, metavar="FILE", help="the bearer token the webhook kubeconfig's user holds"
    )
    p.add_argument("--tls-cert", type=Path, metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", type=Path, metavar="FILE", help="the certificate's private key (PEM)")
    p.add_argument(
        "--client-ca", type=Path, metavar="FILE", help="require client certificates signed by this CA"
    )
    p.add_argument("--max-size-mb", type=int, default=100, help="rotate at this size (default 100)")
    p.add_argument("--max-backups", type=int, default=10, help="rotated files kept (default 10)")
    p.set_defaults(func=Command("receiver", "cmd_receive"))
