"""`jitgrant target manifests` and `jitgrant target check`: what an EKS target cluster needs before a
policy may name it, and whether it has it.

From the GrantPolicies that name it (files, as `jitgrant policy` reads them): the grants namespace,
the operator's ClusterRole and Role there (exactly `permissions.py`'s TARGET_* rules, `bind` only on
the ClusterRoles the policies grant), their bindings to the access entry's group, and the access
entry itself as an AWS CLI command or a Terraform resource (docs/eks.md, "Kubernetes: mapping the
target role"). Nothing is contacted: the output is for review and `kubectl apply` / `terraform`.

`check` goes the operator's way, step by step, and says which step fails and what is missing: it
assumes the target role (with the operator's own AWS credentials: run it where they are), calls
DescribeCluster, signs an EKS token, authenticates with it, asks the cluster (SelfSubjectAccessReview)
for each of the operator's rights there, and reads each ClusterRole the policies grant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from jitgrant.cli.exitcodes import ExitCode
from jitgrant.models import EKSTarget, GrantPolicySpec
from jitgrant.permissions import (
    GRANT_WRITE_PERMISSIONS,
    GRANTABLE_CLUSTER_ROLE_PERMISSIONS,
    TARGET_CLUSTER_PERMISSIONS,
    TARGET_GRANTS_NAMESPACE_PERMISSIONS,
    as_rbac_rules,
)

# What the access entry maps the target role to (docs/eks.md): the session name is the request, so
# the cluster's audit log names it; the group is what the RBAC below is bound to.
OPERATORS_GROUP = "jitgrant:operators"
USERNAME_TEMPLATE = "jitgrant:{{SessionName}}"
NAME = "jitgrant-target"
FORMATS = ("kubernetes", "aws", "terraform")


@dataclass
class TargetNeeds:
    """One target cluster (by ARN) and the ClusterRoles the policies naming it grant there."""

    target: EKSTarget
    policies: list[str] = field(default_factory=list)
    cluster_roles: set[str] = field(default_factory=set)
    namespaces: set[str] = field(default_factory=set)  # where the policies grant


def add_target_subcommands(sub: Any) -> None:
    target = sub.add_parser("target", help="what an EKS target cluster needs")
    commands = target.add_subparsers(dest="target_command", metavar="COMMAND", required=True)
    manifests = commands.add_parser(
        "manifests",
        help="render the target's RBAC and access entry from the policies that name it",
        description="Render what each EKS cluster the policies name needs before grants can be made "
        "there: the operator's ClusterRole, Role and bindings (least privilege, bind only on the "
        "ClusterRoles the policies grant) and the access entry mapping the target role to them.",
    )
    manifests.add_argument(
        "-f", "--filename", action="append", required=True, type=Path, metavar="FILE",
        help="a YAML file of GrantPolicies (repeatable)",
    )  # fmt: skip
    manifests.add_argument(
        "--cluster", default=None, metavar="NAME|ARN", help="only this cluster (its name or its ARN)"
    )
    manifests.add_argument(
        "--format", choices=FORMATS, default="kubernetes",
        help="kubernetes: the RBAC as YAML; aws: the access entry as AWS CLI; terraform: as Terraform",
    )  # fmt: skip
    manifests.add_argument(
        "--grants-namespace",
        default="jitgrant-grants",
        metavar="NAMESPACE",
        help="the operator's grantsNamespace (default %(default)s): the target's ServiceAccounts live there",
    )
    manifests.set_defaults(func=_manifests)
    check = commands.add_parser(
        "check",
        help="verify the operator can reach an EKS target and holds what it needs there",
        description="Verify, as the operator would, that an EKS cluster the policies name can be "
        "reached and used: AssumeRole, DescribeCluster, the EKS token, the operator's RBAC there and "
        "the grantable ClusterRoles; print each check and what is missing. Exit 0 when all pass, 1 "
        "otherwise. Uses the AWS credentials of the environment (the operator's role).",
    )
    check.add_argument("name", metavar="NAME|ARN", help="the cluster, by name or ARN, as a policy names it")
    check.add_argument(
        "-f", "--filename", action="append", required=True, type=Path, metavar="FILE",
        help="a YAML file of the GrantPolicies naming it (repeatable)",
    )  # fmt: skip
    check.add_argument(
        "--grants-namespace", default="jitgrant-grants", metavar="NAMESPACE",
        help="the operator's grantsNamespace (default %(default)s)",
    )  # fmt: skip
    check.add_argument(
        "--aws-endpoint-url", default=None, metavar="URL",
        help="send STS and EKS calls here (a VPC endpoint, or moto in development)",
    )  # fmt: skip
    check.add_argument(
        "--server", default=None, metavar="URL",
        help="the API server to use instead of DescribeCluster's endpoint (development)",
    )  # fmt: skip
    check.add_argument(
        "--certificate-authority", type=Path, default=None, metavar="FILE",
        help="with --server: the CA (PEM) that signed its certificate",
    )  # fmt: skip
    check.set_defaults(func=_check)


def needs_of(documents: Iterable[Mapping[str, Any]]) -> dict[str, TargetNeeds]:
    """Each EKS target the GrantPolicies name, by cluster ARN. Raises ValueError naming a policy that
    does not parse."""
    found: dict[str, TargetNeeds] = {}
    for document in documents:
        if document.get("kind") != "GrantPolicy":
            continue
        name = str((document.get("metadata") or {}).get("name") or "?")
        try:
            spec = GrantPolicySpec.model_validate(document.get("spec") or {})
        except ValidationError as exc:
            raise ValueError(f"GrantPolicy {name}: {exc.errors()[0]['msg']} at spec.{_where(exc)}") from exc
        eks = spec.target.eks
        if eks is None:
            continue
        needs = found.setdefault(eks.arn, TargetNeeds(target=eks))
        needs.policies.append(name)
        needs.cluster_roles.update(grant.cluster_role for grant in spec.grants if grant.cluster_role)
        needs.namespaces.update(spec.namespaces)
    return found


def _where(exc: ValidationError) -> str:
    return ".".join(str(part) for part in exc.errors()[0]["loc"])


def kubernetes_manifests(needs: TargetNeeds, *, grants_namespace: str) -> list[dict[str, Any]]:
    subjects = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": OPERATORS_GROUP}]
    roles = tuple(sorted(needs.cluster_roles))
    cluster_rules = as_rbac_rules(TARGET_CLUSTER_PERMISSIONS + GRANT_WRITE_PERMISSIONS)
    if roles:  # bind (and get) only the ClusterRoles the policies grant; none: no bind at all
        cluster_rules += as_rbac_rules(GRANTABLE_CLUSTER_ROLE_PERMISSIONS, resource_names=roles)
    ref = "rbac.authorization.k8s.io"
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": grants_namespace}},
        {
            "apiVersion": f"{ref}/v1",
            "kind": "ClusterRole",
            "metadata": {"name": NAME},
            "rules": cluster_rules,
        },
        {
            "apiVersion": f"{ref}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": NAME},
            "roleRef": {"apiGroup": ref, "kind": "ClusterRole", "name": NAME},
            "subjects": subjects,
        },
        {
            "apiVersion": f"{ref}/v1",
            "kind": "Role",
            "metadata": {"name": NAME, "namespace": grants_namespace},
            "rules": as_rbac_rules(TARGET_GRANTS_NAMESPACE_PERMISSIONS),
        },
        {
            "apiVersion": f"{ref}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": NAME, "namespace": grants_namespace},
            "roleRef": {"apiGroup": ref, "kind": "Role", "name": NAME},
            "subjects": subjects,
        },
    ]


def aws_cli(target: EKSTarget) -> str:
    return (
        f"aws eks create-access-entry --cluster-name {target.cluster_name} --region {target.region} \\\n"
        f"  --principal-arn {target.role_arn} \\\n"
        f"  --username '{USERNAME_TEMPLATE}' \\\n"
        f"  --kubernetes-groups {OPERATORS_GROUP}\n"
    )


def terraform(target: EKSTarget) -> str:
    key = f"{target.cluster_name}_{target.region}_{target.account}"
    resource = "jitgrant_" + "".join(c if c.isalnum() else "_" for c in key)
    return (
        f"# with the AWS provider of account {target.account}, region {target.region}\n"
        f'resource "aws_eks_access_entry" "{resource}" {{\n'
        f'  cluster_name      = "{target.cluster_name}" # {target.arn}\n'
        f'  principal_arn     = "{target.role_arn}"\n'
        f'  user_name         = "{USERNAME_TEMPLATE}"\n'
        f'  kubernetes_groups = ["{OPERATORS_GROUP}"]\n'
        f'  type              = "STANDARD"\n'
        "}\n"
    )


def render(needs: Sequence[TargetNeeds], *, output: str, grants_namespace: str) -> str:
    parts: list[str] = []
    for one in needs:
        header = (
            f"# {one.target.arn}: for GrantPolicy {', '.join(sorted(one.policies))}; the ClusterRoles "
            f"{', '.join(sorted(one.cluster_roles)) or '(none)'} must exist there (a policy grants them, "
            "the operator only binds them)\n"
        )
        if output == "kubernetes":
            body = yaml.safe_dump_all(
                kubernetes_manifests(one, grants_namespace=grants_namespace), sort_keys=False
            )
            parts.append(header + body)
        elif output == "aws":
            parts.append(header + aws_cli(one.target))
        else:
            parts.append(header + terraform(one.target))
    separator = "---\n" if output == "kubernetes" else "\n"
    return separator.join(parts)


def _manifests(args: argparse.Namespace) -> int:
    documents: list[Mapping[str, Any]] = []
    try:
        for path in args.filename:
            documents += [doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, Mapping)]
        found = needs_of(documents)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    selected = [
        needs
        for arn, needs in sorted(found.items())
        if args.cluster is None or args.cluster in (arn, needs.target.cluster_name)
    ]
    if not selected:
        names = ", ".join(sorted(found)) or "none"
        print(
            f"error: no GrantPolicy in {', '.join(map(str, args.filename))} targets "
            f"{'EKS cluster ' + args.cluster if args.cluster else 'an EKS cluster'} "
            f"(EKS targets found: {names})",
            file=sys.stderr,
        )
        return int(ExitCode.USAGE)
    sys.stdout.write(render(selected, output=args.format, grants_namespace=args.grants_namespace))
    return int(ExitCode.OK)


# ---- check ----------------------------------------------------------------------------------------


def _select(args: argparse.Namespace) -> TargetNeeds | str:
    documents: list[Mapping[str, Any]] = []
    try:
        for path in args.filename:
            documents += [doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, Mapping)]
        found = needs_of(documents)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        return str(exc)
    matches = [n for arn, n in found.items() if args.name in (arn, n.target.cluster_name)]
    if len(matches) != 1:
        why = "names no EKS cluster" if not matches else "names several clusters of that name: give the ARN"
        return f"{args.name}: the policies {why} (EKS targets found: {', '.join(sorted(found)) or 'none'})"
    return matches[0]


def _needed(
    needs: TargetNeeds, *, namespaces: Sequence[str], grants_namespace: str
) -> list[tuple[str, dict[str, str]]]:
    """(what, resourceAttributes) for every right the operator needs in the target."""
    wanted: list[tuple[str, dict[str, str]]] = []

    def add(permission: Any, namespace: str, name: str = "") -> None:
        resource, _, subresource = permission.resource.partition("/")
        for verb in permission.verbs:
            attributes = {"group": permission.api_group, "resource": resource, "verb": verb}
            if subresource:
                attributes["subresource"] = subresource
            if namespace:
                attributes["namespace"] = namespace
            if name:
                attributes["name"] = name
            where = f" in {namespace}" if namespace else " cluster-wide"
            wanted.append((f"{verb} {permission.resource}{' ' + name if name else ''}{where}", attributes))

    for permission in TARGET_CLUSTER_PERMISSIONS:
        add(permission, "")
    for permission in GRANT_WRITE_PERMISSIONS:
        for namespace in namespaces:
            add(permission, "" if namespace == "*" else namespace)
    for role in sorted(needs.cluster_roles):
        for permission in GRANTABLE_CLUSTER_ROLE_PERMISSIONS:
            add(permission, "", role)
    for permission in TARGET_GRANTS_NAMESPACE_PERMISSIONS:
        add(permission, grants_namespace)
    return wanted


def _check(args: argparse.Namespace) -> int:
    # The AWS and Kubernetes clients load only for this command (`jitgrant --help` stays light).
    from jitgrant.clusters.target_check import run_checks

    selected = _select(args)
    if isinstance(selected, str):
        print(f"error: {selected}", file=sys.stderr)
        return int(ExitCode.USAGE)
    if args.certificate_authority is not None and args.server is None:
        print("error: --certificate-authority needs --server", file=sys.stderr)
        return int(ExitCode.USAGE)
    server = None
    if args.server is not None:
        server = (
            args.server,
            args.certificate_authority.read_bytes() if args.certificate_authority else None,
        )
    namespaces = sorted(selected.namespaces)
    checks = run_checks(
        selected.target,
        _needed(selected, namespaces=namespaces, grants_namespace=args.grants_namespace),
        sorted(selected.cluster_roles),
        grants_namespace=args.grants_namespace,
        aws_endpoint_url=args.aws_endpoint_url,
        server=server,
    )
    print(f"{selected.target.arn} (GrantPolicy {', '.join(sorted(selected.policies))})")
    for check in checks:
        mark = {True: "ok     ", False: "MISSING", None: "unknown"}[check.ok]
        print(f"  {mark} {check.what}" + (f": {check.detail}" if check.detail else ""))
    failed = [check for check in checks if check.ok is not True]
    if failed:
        print(
            f"{len(failed)} check(s) did not pass; `jitgrant target manifests` renders what the cluster needs"
        )
        return int(ExitCode.CHECK_FAILED)
    return int(ExitCode.OK)
