"""`jitgrant policy test|lint`, `who-can` and `exposure`: flags only (policy_run.py runs them).

Offline: they read GrantPolicies, ClusterRoles and policy test files from a directory and compute
with jitgrant.offline, the same pure code the webhook and reconciler run. See docs/policies-as-code.md.
"""

from __future__ import annotations

import argparse
from typing import Any

from jitgrant.cli.kubeconfig import add_cluster_flags
from jitgrant.cli.parsers import Command

_FORMATS = ("table", "json", "junit")


def add_policy_subcommands(sub: Any) -> None:
    policy = sub.add_parser("policy", help="test and lint GrantPolicies offline, from files")
    actions = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    test = actions.add_parser(
        "test",
        help="evaluate every GrantPolicyTest case below DIR with the operator's own decision",
        description="Exit 0 when every case's outcome matches its expectation, 1 otherwise.",
    )
    test.add_argument("dir", metavar="DIR", nargs="+", help="directories (or files) of YAML manifests")
    test.add_argument(
        "-o", "--output", choices=_FORMATS, default="table", help="table (default), json, junit"
    )
    test.set_defaults(func=Command("policy_run", "run_test"))
    lint = actions.add_parser(
        "lint",
        help="the apply-time validation of every GrantPolicy below DIR, plus reviewer warnings",
        description="Exit 1 when a policy would be refused at apply time (or with --strict, any warning).",
    )
    lint.add_argument("dir", metavar="DIR", nargs="+", help="directories (or files) of YAML manifests")
    lint.add_argument("-o", "--output", choices=("table", "json"), default="table")
    lint.add_argument("--strict", action="store_true", help="warnings fail too")
    lint.set_defaults(func=Command("policy_run", "run_lint"))
    diff = actions.add_parser(
        "diff",
        help="the routes (who can get what, how) an edit of the policies adds and removes",
        description="Compare two trees of manifests, e.g. a checkout of main and of a branch.",
    )
    diff.add_argument("old", metavar="OLD", help="directory (or file) before the change")
    diff.add_argument("new", metavar="NEW", help="directory (or file) after the change")
    diff.add_argument("-o", "--output", choices=("table", "json"), default="table")
    diff.set_defaults(func=Command("policy_run", "run_diff"))


def add_who_can_subcommands(sub: Any) -> None:
    who = sub.add_parser(
        "who-can",
        help="every identity that could obtain VERB RESOURCE through a GrantPolicy, and the route",
    )
    who.add_argument("verb", metavar="VERB")
    who.add_argument("resource", metavar="RESOURCE", help="e.g. deployments, deployments.apps, pods/exec")
    who.add_argument("-n", "--namespace", default=None, help="the namespace (default: any)")
    who.add_argument("--name", default=None, help="one object's name (resourceNames)")
    _source_flags(who)
    who.set_defaults(func=Command("policy_run", "run_who_can"))
    exposure = sub.add_parser(
        "exposure", help="for each identity, everything it could obtain through GrantPolicies"
    )
    exposure.add_argument(
        "--identity",
        action="append",
        default=[],
        metavar="NAME",
        help="a user, group or system:serviceaccount:NS:NAME (repeatable; default: every one named)",
    )
    exposure.add_argument("-o", "--output", choices=("table", "json", "markdown"), default="table")
    _source_flags(exposure, output=False)
    exposure.set_defaults(func=Command("policy_run", "run_exposure"))


def _source_flags(parser: argparse.ArgumentParser, *, output: bool = True) -> None:
    parser.add_argument(
        "-f",
        "--from",
        dest="sources",
        action="append",
        default=[],
        metavar="DIR",
        help="directory (or file) of GrantPolicy and ClusterRole manifests (repeatable); without it, "
        "read them from the cluster",
    )
    add_cluster_flags(parser, namespace=False)
    if output:
        parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
