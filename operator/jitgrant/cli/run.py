"""`jitgrant run`: the operator, against KUBECONFIG / in-cluster config, or `--embedded`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from jitgrant.logs import FORMATS, LEVELS
from jitgrant.logs import configure as configure_logging
from jitgrant.notify.config import NotifyConfig
from jitgrant.settings import OperatorSettings, WebhookSettings

RUN_HELP = "run the operator until interrupted"


def add_run_subcommand(sub: Any) -> None:
    p = sub.add_parser("run", help=RUN_HELP)
    p.add_argument(
        "--embedded",
        action="store_true",
        help="a playground: an embedded cluster with the operator, example policies and kubeconfigs for "
        "an agent, an approver and an admin",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="with --embedded: where the kubeconfigs and audit trail go (default: a temporary directory "
        "removed on exit)",
    )
    p.add_argument("--keep", action="store_true", help="with --embedded: keep the temporary state directory")
    p.add_argument(
        "--kubeconfig", default=os.environ.get("KUBECONFIG"), help="default: $KUBECONFIG or in-cluster"
    )
    p.add_argument("--namespace-of-operator", default=os.environ.get("POD_NAMESPACE", "jitgrant-system"))
    p.add_argument(
        "--grants-namespace",
        default=OperatorSettings.model_fields["grants_namespace"].default,
        help="the namespace (in every cluster) holding per-grant ServiceAccounts and kubeconfig Secrets; "
        "the operator's rights on ServiceAccounts, tokens and Secrets exist only there",
    )
    p.add_argument("--instance", default=os.environ.get("HOSTNAME", "jitgrant"))
    p.add_argument("--webhook-port", type=int, default=None)
    p.add_argument("--webhook-cert", type=Path, default=None)
    p.add_argument(
        "--webhook-client-ca",
        type=Path,
        default=None,
        help="CA file: accept webhook calls only with a client certificate it signed (the API server's)",
    )
    p.add_argument("--webhook-key", type=Path, default=None)
    p.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on this port")
    p.add_argument("--health-port", type=int, default=None, help="serve /healthz and /readyz on this port")
    p.add_argument("--audit-config", type=Path, default=None)
    p.add_argument(
        "--notify-config",
        type=Path,
        default=None,
        help="YAML naming Slack/Teams/webhook notifiers for pending, decided, expired and revoked requests",
    )
    p.add_argument(
        "--receipt-key-file",
        type=Path,
        default=None,
        help="HMAC key for requester seals and approval receipts (>= 32 bytes)",
    )
    p.add_argument("--inline-rules", action="store_true", help="allow Roles created from inline rules")
    p.add_argument(
        "--deny-rules",
        type=deny_rules_argument,
        default=(),
        metavar="JSON",
        help="permissions no grant may carry, for every policy: a JSON list of RBAC-shaped rules "
        '(e.g. \'[{"apiGroups":[""],"resources":["pods"],"verbs":["delete"]}]\'); the chart\'s denyRules',
    )
    p.add_argument(
        "--eks",
        action="store_true",
        default=os.environ.get("JITGRANT_EKS", "") == "true",
        help="grant in EKS clusters through an assumed IAM role (AWS credentials from the pod, e.g. IRSA)",
    )
    p.add_argument("--sweep-interval", type=int, default=30, help="seconds between expiry sweeps")
    p.add_argument(
        "--concurrency",
        type=_concurrency,
        default=OperatorSettings.model_fields["concurrency"].default,
        metavar="N",
        help="requests reconciled at once (1-256, default %(default)s); the rest wait in the order they "
        "became due, so a burst is served first come, first served",
    )
    p.add_argument(
        "--finished-retention",
        type=_retention,
        default=OperatorSettings.model_fields["finished_retention"].default,
        metavar="DURATION",
        help="how long a finished request (Expired, Revoked, Denied, TimedOut, Failed) stays before the "
        "operator audits its removal and deletes it, e.g. 168h (the default) or 30m; 0 keeps them forever",
    )
    p.add_argument(
        "--jwks-cache-ttl",
        type=_seconds_between(1, 86400),
        default=OperatorSettings.model_fields["jwks_cache_ttl"].default,
        metavar="SECONDS",
        help="longest an identity provider's keys are kept (its Cache-Control max-age is honoured up to "
        "this; default 300): a key the IdP removed stops being accepted within it",
    )
    p.add_argument(
        "--jwks-refetch-interval",
        type=_seconds_between(0, 3600),
        default=OperatorSettings.model_fields["jwks_refetch_interval"].default,
        metavar="SECONDS",
        help="a token naming an unknown key id refetches the keys at once, but at most once per this "
        "many seconds per issuer (default 5)",
    )
    p.add_argument(
        "--identity-fetch-budget",
        type=_seconds_between(0.1, 8),
        default=OperatorSettings.model_fields["identity_fetch_budget"].default,
        metavar="SECONDS",
        help="time for an identity provider's discovery document and keys together (default 3; at most 8, "
        "inside the API server's 10 s webhook timeout); past it the token is refused, nothing is filed",
    )
    p.add_argument(
        "--leader-elect",
        action="store_true",
        default=os.environ.get("JITGRANT_LEADER_ELECT", "") == "true",
        help="one of several replicas: serve the webhooks, act only while holding the Lease",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="same as --log-level debug")
    p.add_argument("--log-level", choices=LEVELS, default="info")
    p.add_argument(
        "--log-format",
        choices=FORMATS,
        default="text",
        help="json: one object per line, with the request's namespace/name/uid on lines about it",
    )
    p.set_defaults(func=cmd_run)


def deny_rules_argument(text: str) -> tuple[Any, ...]:
    from jitgrant.policy.deny import parse_deny_rules

    try:
        return parse_deny_rules(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _concurrency(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"{text!r} is not accepted: expected a whole number from 1 to 256")
    return value


def _seconds_between(low: float, high: float) -> Callable[[str], timedelta]:
    def parse(text: str) -> timedelta:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:  # NaN fails too
            raise argparse.ArgumentTypeError(
                f"{text!r} is not accepted: expected a number of seconds from {low:g} to {high:g}"
            )
        return timedelta(seconds=value)

    return parse


def _retention(text: str) -> timedelta:
    """argparse turns this error into `argument --finished-retention: <message>` and exit code 2."""
    # Imported here: the lifecycle package costs `jitgrant --help` about 40 ms.
    from jitgrant.lifecycle.retention import RETENTION_SYNTAX, parse_retention

    try:
        return parse_retention(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not accepted: expected {RETENTION_SYNTAX}") from None


def settings_from_args(args: argparse.Namespace) -> OperatorSettings:
    webhook = None
    if args.webhook_port is not None:
        if not (args.webhook_cert and args.webhook_key):
            raise SystemExit("error: --webhook-port needs --webhook-cert and --webhook-key")
        webhook = WebhookSettings(
            port=args.webhook_port,
            certfile=args.webhook_cert,
            keyfile=args.webhook_key,
            client_ca_file=args.webhook_client_ca,
        )
    kwargs: dict[str, Any] = {
        "operator_namespace": args.namespace_of_operator,
        # The chart passes the pod's own ServiceAccount: its name depends on the release name.
        "operator_username": (
            f"system:serviceaccount:{args.namespace_of_operator}:"
            f"{os.environ.get('OPERATOR_SERVICE_ACCOUNT') or 'jitgrant'}"
        ),
        "grants_namespace": args.grants_namespace,
        "instance": args.instance,
        "inline_rules_enabled": args.inline_rules,
        "deny_rules": args.deny_rules,
        "sweep_interval": timedelta(seconds=args.sweep_interval),
        "finished_retention": args.finished_retention,
        "concurrency": args.concurrency,
        "jwks_cache_ttl": args.jwks_cache_ttl,
        "jwks_refetch_interval": args.jwks_refetch_interval,
        "identity_fetch_budget": args.identity_fetch_budget,
        "audit_config": args.audit_config,
        "metrics_port": args.metrics_port,
        "health_port": args.health_port,
        "eks_enabled": args.eks,
        "webhook": webhook,
    }
    if args.receipt_key_file is not None:
        return OperatorSettings.with_receipt_key_file(args.receipt_key_file, **kwargs)
    print(
        "warning: no --receipt-key-file: a random key is used, so approvals recorded before a restart "
        "no longer verify after it",
        file=sys.stderr,
    )
    return OperatorSettings(**kwargs)


#: Without its admission webhooks the operator cannot stamp who filed a request or check approvals
#: (every request would end Failed, RequesterNotVerified), and kopf would stop at start-up with "no
#: admission server/tunnel is configured": refused before anything starts, with the ways that work.
NO_WEBHOOK = """\
error: jitgrant run needs its admission webhooks: pass --webhook-port PORT --webhook-cert CERT \
--webhook-key KEY (the API server must reach https://<this host>:PORT with a certificate it trusts).
The supported ways to run it:
  in the cluster: helm install jitgrant charts/jitgrant (the chart sets these flags and registers the
    webhook configuration with its CA);
  out of the cluster against a dev cluster: serve the webhooks on a port the API server can reach, with
    a certificate for that address, and point the chart's ValidatingWebhookConfiguration and
    MutatingWebhookConfiguration at it (url and caBundle), then
    jitgrant run --kubeconfig DEV --webhook-port 9443 --webhook-cert tls.crt --webhook-key tls.key
To try jitgrant without a cluster: jitgrant run --embedded (everything on this machine)."""


def cmd_run(args: argparse.Namespace) -> int:
    configure_logging(level="debug" if args.verbose else args.log_level, fmt=args.log_format)
    if args.embedded:
        return _run_embedded(args)
    if args.webhook_port is None:
        print(NO_WEBHOOK, file=sys.stderr)
        return 2
    from jitgrant.operator.runner import build_runtime, leader_election, run

    settings = settings_from_args(args)
    notify_config = _notify_config(args.notify_config)
    runtime = build_runtime(settings, kubeconfig=args.kubeconfig)
    if notify_config is not None and notify_config.notifiers:
        from jitgrant.notify import Notifier

        runtime.notifier = Notifier.from_config(notify_config, registry=runtime.metrics.registry)
    election = leader_election(settings, kubeconfig=args.kubeconfig) if args.leader_elect else None
    try:
        asyncio.run(run(runtime, election=election))
    except KeyboardInterrupt:
        return 0
    finally:
        if runtime.notifier is not None:
            runtime.notifier.close()
    return 0


def _notify_config(path: Path | None) -> NotifyConfig | None:
    """Read at start-up, so a bad file stops the operator with the field named, not the first notice."""
    if path is None:
        return None
    try:
        return NotifyConfig.from_file(path)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: --notify-config {path}: {exc}") from exc


def _run_embedded(args: argparse.Namespace) -> int:
    from jitgrant.cli.plugins import run_plugin

    return run_plugin("embedded", args)
