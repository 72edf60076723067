"""`jitgrant demo --scenario eks`: a grant in an EKS cluster, delivered to an agent proven by OIDC.

The operator's own cluster holds the policy and the request; the grant lands in a second embedded
cluster standing in for EKS cluster `prod-eu`, reached through an IAM role the operator assumes on
moto (STS and EKS in server mode on 127.0.0.1). The agent runs outside every cluster: it proves who
it is with an OIDC ID token from a local issuer, files the request with `jitgrant request --wait
--kubeconfig-out`, and uses the kubeconfig it receives with the official Kubernetes client. Every
step is checked against the clusters' actual state, and after the window nothing of the grant is
left in either cluster. It ends with `jitgrant activity --eks-cluster prod-eu`: prod-eu's audit log,
delivered to CloudWatch Logs as EKS control-plane logging does, lists what the agent did.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.config
from cryptography import x509
from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from embedkube import User
from jitgrant.clusters.eks import sts_name
from jitgrant.permissions import (
    GRANT_WRITE_PERMISSIONS,
    TARGET_CLUSTER_PERMISSIONS,
    TARGET_GRANTS_NAMESPACE_PERMISSIONS,
)
from jitgrant.reactor.runtime import OPERATOR_SESSION
from jitgrant_testing.aws import OPERATORS_GROUP, AWSStandIns, ClusterSpec
from jitgrant_testing.demo.prod_approval import run_cli
from jitgrant_testing.demo.scenarios import (
    Reporter,
    _parse_time,
    _print_audit,
    forbidden,
    register,
    wait_for_phase,
)
from jitgrant_testing.environment import EXAMPLES, GRANTS_NAMESPACE, Environment, load_manifests

CLUSTER = "prod-eu"
CLUSTER_ARN = ClusterSpec(CLUSTER).arn  # how grant records, metrics and the audit trail name it
POLICY = "eks-restart"
AGENT_SUBJECT = "repo:acme/checkout:ref:refs/heads/main"
FILER = "release-bot"  # the agent's runner: may file requests in `agents`, nothing else
WINDOW = "10s"


def policy_manifest(aws: AWSStandIns) -> dict[str, Any]:
    assert aws.issuer is not None
    return {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "GrantPolicy",
        "metadata": {"name": POLICY},
        "spec": {
            "requesters": {"oidc": [aws.issuer.requester(AGENT_SUBJECT)]},
            "target": aws.target(CLUSTER),
            "namespaces": ["payments"],
            "grants": [{"clusterRole": "jit-restart-checkout"}],
            "maxDuration": "15m",
            "approval": {"required": False},
            "justification": {"required": True, "pattern": "^(INC|CHG)-[0-9]+"},
        },
    }


def _kubeconfig_for(env: Environment, name: str, token: str) -> str:
    path = env.state_dir / f"{name}.kubeconfig"
    env.cluster.write_kubeconfig(path, token=token, namespace="agents")
    return str(path)


def _restart(client: ApiClient, namespace: str, name: str) -> None:
    AppsV1Api(client).patch_namespaced_deployment(
        name,
        namespace,
        {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "demo"}}}}},
    )


def _refused(action: Any) -> tuple[bool, str]:
    """(True, why) when the server refuses with 401 or 403."""
    try:
        action()
    except ApiException as exc:
        if exc.status in (401, 403):
            return True, f"{exc.status} {json.loads(exc.body or '{}').get('message', exc.reason)}"
        raise
    return False, ""


def _moto_describe(aws: AWSStandIns) -> tuple[str, bool]:
    """What moto's DescribeCluster says: (endpoint, whether its CA data is a PEM certificate)."""
    cluster = aws.moto.admin_client("eks").describe_cluster(name=CLUSTER)["cluster"]
    try:
        x509.load_pem_x509_certificates(base64.b64decode(cluster["certificateAuthority"]["data"]))
        valid = True
    except (ValueError, binascii.Error):
        valid = False
    return str(cluster["endpoint"]), valid


def eks(report: Reporter) -> None:
    """EKS: an assumed role (moto), the grant in the target cluster, a kubeconfig for an OIDC agent."""
    report.step("start the AWS stand-ins: moto (STS, IAM, EKS) on 127.0.0.1, an OIDC issuer, cluster prod-eu")
    grantable = load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml")
    with AWSStandIns(grantable_cluster_roles=grantable, with_oidc_issuer=True) as aws:
        assert aws.issuer is not None
        target = aws.standin(CLUSTER)
        report.check(
            True, f"moto at {aws.moto.url}; IAM role {target.role_arn}; EKS cluster {CLUSTER} created"
        )
        endpoint, ca_valid = _moto_describe(aws)
        report.check(
            not ca_valid,
            f"moto's DescribeCluster answers endpoint {endpoint} (made up) with CA data that is not a PEM "
            "certificate, so the operator's EKSAccess overrides both with the stand-in's "
            f"{target.cluster.https_url} and its CA; DescribeCluster is still called",
        )
        report.check(True, f"OIDC issuer at {aws.issuer.url} (discovery + JWKS over TLS)")

        report.step("the EKS stand-in maps the target role like an access entry, with the chart's RBAC only")
        rbac = RbacAuthorizationV1Api(target.admin)
        operator_role = rbac.read_cluster_role("jitgrant-operator").to_dict()
        bind_role = rbac.read_cluster_role("jitgrant-operator-bind").to_dict()
        held = sorted(f"{','.join(r['verbs'])} {','.join(r['resources'])}" for r in operator_role["rules"])
        expected = sorted(
            f"{','.join(p.verbs)} {p.resource}" for p in TARGET_CLUSTER_PERMISSIONS + GRANT_WRITE_PERMISSIONS
        )
        report.check(held == expected, f"group {OPERATORS_GROUP} may: {'; '.join(held)}")
        grants_role = rbac.read_namespaced_role("jitgrant-operator", GRANTS_NAMESPACE).to_dict()
        in_grants = sorted(f"{','.join(r['verbs'])} {','.join(r['resources'])}" for r in grants_role["rules"])
        report.check(
            in_grants
            == sorted(f"{','.join(p.verbs)} {p.resource}" for p in TARGET_GRANTS_NAMESPACE_PERMISSIONS),
            f"and only in namespace {GRANTS_NAMESPACE}: {'; '.join(in_grants)} (no Secrets anywhere)",
        )
        report.check(
            bind_role["rules"][0]["resource_names"] == ["jit-restart-checkout"],
            "and bind only ClusterRole jit-restart-checkout (resourceNames); the role maps to user "
            "jitgrant:{{SessionName}}",
        )

        report.step("start the operator's own cluster and the operator, with EKS access through moto")
        with Environment(runtime_hook=aws.runtime_hook) as env:
            report.check(True, f"own cluster at {env.cluster.url}, operator running")
            env.apply([policy_manifest(aws)])
            env.allow_to_request("agents", user=FILER)
            filer_token = env.cluster.add_user(User(name=FILER, uid="uid-release-bot"))
            other_token = env.cluster.add_user(User(name="other-bot", uid="uid-other-bot"))
            env.allow_to_request("agents", user="other-bot")
            report.check(
                True,
                f"GrantPolicy {POLICY}: OIDC subject {AGENT_SUBJECT} of the local issuer may get "
                f"jit-restart-checkout in payments of EKS cluster {CLUSTER} ({target.role_arn}); "
                f"user {FILER} (the agent's runner) may file AccessRequests in agents",
            )

            report.step("the agent, holding only an OIDC ID token, files its request and waits")
            token_file = env.state_dir / "agent.jwt"
            token_file.write_text(aws.issuer.mint(AGENT_SUBJECT))
            token_file.chmod(0o600)
            kubeconfig_out = env.state_dir / "agent-prod-eu.kubeconfig"
            code, output = run_cli(
                report,
                [
                    "request",
                    "--policy",
                    POLICY,
                    "--target-namespace",
                    "payments",
                    "--cluster-role",
                    "jit-restart-checkout",
                    "--for",
                    WINDOW,
                    "--justification",
                    "INC-4711 checkout pods stuck; rollout restart",
                    "-n",
                    "agents",
                    "--oidc-token-file",
                    str(token_file),
                    "--wait",
                    "--wait-timeout",
                    "60s",
                    "--kubeconfig-out",
                    str(kubeconfig_out),
                    "--kubeconfig",
                    _kubeconfig_for(env, FILER, filer_token),
                ],
            )
            report.check(code == 0, "`jitgrant request` exits 0: the grant is active")
            name = output.splitlines()[0].strip()
            mode = stat.S_IMODE(os.stat(kubeconfig_out).st_mode)
            report.check(
                mode == 0o600, f"the kubeconfig was written to {kubeconfig_out.name} with mode {mode:o}"
            )
            obj = env.get_request("agents", name)
            requester = obj["spec"]["requester"]
            report.check(
                requester["provenBy"] == "oidc"
                and requester["subject"] == AGENT_SUBJECT
                and requester["extra"]["jitgrant.dev/created-by"] == [FILER],
                f"requester stamped from the verified token: {requester['username']} (filed by {FILER})",
            )
            report.check(
                "jitgrant.dev/oidc-token" not in (obj["metadata"].get("annotations") or {}),
                "the ID token is not stored in the request (the webhook removed it)",
            )

            report.step("the operator reached prod-eu as a role session named after the request")
            session = f"jitgrant-agents-{name}"
            calls = [c for c in aws.assume_calls if c.session_name == sts_name(session)]
            report.check(bool(calls), f"AssumeRole was called with RoleSessionName {sts_name(session)}")
            call = calls[-1]
            report.check(
                call.role_arn == target.role_arn
                and call.source_identity == sts_name(requester["username"])
                and call.duration_seconds == 900,
                f"RoleArn {call.role_arn}, SourceIdentity {call.source_identity} (the requester; moto "
                "ignores it, so this is the parameter as botocore sent it), DurationSeconds 900",
            )
            report.check(
                call.assumed_role_arn == f"arn:aws:sts::{target.role_arn.split(':')[4]}:assumed-role/"
                f"jitgrant-target/{sts_name(session)}",
                f"moto answered with session ARN {call.assumed_role_arn}",
            )
            report.check(
                (f"jitgrant:{sts_name(session)}", (OPERATORS_GROUP,)) in target.authenticated,
                f"prod-eu authenticated the operator's EKS token (presigned GetCallerIdentity checked by "
                f"STS) as jitgrant:{sts_name(session)} in group {OPERATORS_GROUP}",
            )

            report.step("the grant landed in prod-eu, and nowhere else")
            grant = obj["status"]["grant"]
            report.check(
                grant["cluster"] == CLUSTER_ARN and grant.get("kubeconfigSecret"),
                f"status.grant: cluster {grant['cluster']}, RoleBinding {grant['roleBinding']}, "
                f"ServiceAccount {grant['serviceAccount']}, kubeconfig Secret {grant['kubeconfigSecret']}",
            )
            bindings = {b["metadata"]["name"]: b for b in target.role_bindings("payments")}
            binding = bindings.get(grant["roleBinding"])
            report.check(
                binding is not None
                and binding["roleRef"]["name"] == "jit-restart-checkout"
                and binding["subjects"]
                == [
                    {"kind": "ServiceAccount", "name": grant["serviceAccount"], "namespace": GRANTS_NAMESPACE}
                ],
                f"prod-eu: RoleBinding payments/{grant['roleBinding']} binds jit-restart-checkout to "
                f"ServiceAccount {GRANTS_NAMESPACE}/{grant['serviceAccount']} only",
            )
            report.check(
                f"ServiceAccount/{grant['serviceAccount']}" in target.managed(GRANTS_NAMESPACE),
                f"prod-eu: ServiceAccount {GRANTS_NAMESPACE}/{grant['serviceAccount']} exists, made for "
                "this grant in the grants namespace (the only place the operator may mint tokens)",
            )
            own_bindings = [
                b["metadata"]["name"]
                for b in env.role_bindings("payments")
                if b["metadata"]["name"].startswith("jit-")
            ]
            report.check(not own_bindings, "own cluster: no jitgrant RoleBinding in payments")
            secret = CoreV1Api(env.admin).read_namespaced_secret(grant["kubeconfigSecret"], GRANTS_NAMESPACE)
            report.check(
                secret.metadata.labels.get("app.kubernetes.io/managed-by") == "jitgrant",
                f"own cluster: Secret {GRANTS_NAMESPACE}/{grant['kubeconfigSecret']} holds the kubeconfig",
            )

            report.step("the agent uses the kubeconfig with the official Kubernetes client")
            agent = kubernetes.config.new_client_from_config(config_file=str(kubeconfig_out))
            _, context = kubernetes.config.list_kube_config_contexts(config_file=str(kubeconfig_out))
            report.check(
                agent.configuration.host == target.cluster.https_url
                and context["context"]["namespace"] == "payments",
                f"it points at prod-eu ({agent.configuration.host}, TLS with the cluster's CA), "
                "default namespace payments",
            )
            _restart(agent, "payments", "checkout")
            restarted = AppsV1Api(target.admin).read_namespaced_deployment("checkout", "payments")
            report.check(
                (restarted.spec.template.metadata.annotations or {}).get("kubectl.kubernetes.io/restartedAt")
                == "demo",
                "the agent restarted deployment/checkout in payments on prod-eu",
            )
            refused, why = _refused(lambda: _restart(agent, "payments", "ledger"))
            report.check(refused, f"restarting deployment/ledger is refused: {why}")
            refused, why = _refused(lambda: _restart(agent, "orders", "checkout"))
            report.check(refused, f"restarting checkout in namespace orders is refused: {why}")
            other = env.cluster.api_client(token=other_token)
            refused, message = forbidden(
                lambda: CoreV1Api(other).read_namespaced_secret(grant["kubeconfigSecret"], GRANTS_NAMESPACE)
            )
            report.check(refused, f"another requester in agents cannot read the Secret: {message}")

            report.step("the window closes")
            obj = wait_for_phase(env, "agents", name, {"Expired", "Failed"}, timeout=40, report=report)
            status = obj["status"]
            report.check(status["phase"] == "Expired", f"phase Expired at {status.get('endedAt')}")
            lag = (_parse_time(status["endedAt"]) - _parse_time(status["expiresAt"])).total_seconds()
            report.check(lag < 5, f"revoked {lag:.0f}s after expiresAt")
            for namespace, deployment in (
                ("payments", "checkout"),
                ("payments", "ledger"),
                ("orders", "checkout"),
            ):
                refused, why = _refused(lambda ns=namespace, d=deployment: _restart(agent, ns, d))
                report.check(refused, f"{namespace}/{deployment}: refused ({why})")
            report.check(
                not target.managed("payments") and not target.managed(GRANTS_NAMESPACE),
                f"prod-eu: no jitgrant RoleBinding in payments, no ServiceAccount left in {GRANTS_NAMESPACE} "
                "(the agent's token died with its ServiceAccount)",
            )
            own_core = CoreV1Api(env.admin)
            left = [s.metadata.name for s in own_core.list_namespaced_secret(GRANTS_NAMESPACE).items]
            left += [
                r.metadata.name
                for r in RbacAuthorizationV1Api(env.admin).list_namespaced_role(GRANTS_NAMESPACE).items
            ]
            left = [n for n in left if n.startswith("jit-")]
            report.check(
                not left, f"own cluster: no kubeconfig Secret and no reader Role left in {GRANTS_NAMESPACE}"
            )
            housekeeping = [c for c in aws.assume_calls if c.session_name == OPERATOR_SESSION]
            report.check(
                bool(housekeeping) and housekeeping[-1].source_identity == OPERATOR_SESSION,
                f"the clean-up ran as the operator's own session {OPERATOR_SESSION}, not the agent's",
            )
            agent.close()
            other.close()

            report.step("the audit trail (hash-chained JSON lines)")
            records = _print_audit(env, report, obj["metadata"]["uid"], expected=5)
            types = [r["event"]["type"] for r in records]
            report.check(
                types[:5] == ["requested", "approved", "issuing", "granted", "expired"]
                and all(r["event"]["cluster"] == CLUSTER_ARN for r in records),
                f"requested, approved, issuing, granted, expired recorded for {CLUSTER} ({', '.join(types)})",
            )
            report.note(f"audit file: {Path(env.audit_file)}")

            report.step("what the agent did with the grant, from prod-eu's own audit log in CloudWatch Logs")
            _check_activity(report, env, aws, name)


def _activity_rows(output: str) -> list[list[str]]:
    """The table's rows (cells are separated by two or more spaces; OUTCOME holds single ones)."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("TIME ")), len(lines))
    return [re.split(r"\s{2,}", line.strip()) for line in lines[start + 1 :] if line[:1].isdigit()]


@contextlib.contextmanager
def _reader_credentials() -> Iterator[None]:
    """The reader's AWS credentials for the in-process CLI (boto3's default chain reads the
    environment); moto accepts any key. Restored afterwards."""
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
    saved = {name: os.environ.get(name) for name in names}
    for name in names:
        os.environ.pop(name, None)
    os.environ.update(AWS_ACCESS_KEY_ID="AKIAAUDITREADEREXAMPLE", AWS_SECRET_ACCESS_KEY="reader-secret")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _check_activity(report: Reporter, env: Environment, aws: AWSStandIns, name: str) -> None:
    """`jitgrant activity --eks-cluster`: the one restart and the two refused attempts, read from the
    log group EKS control-plane audit logging writes (the stand-in delivers prod-eu's log there)."""
    target = aws.standin(CLUSTER)
    group = aws.deliver_audit_log(CLUSTER)
    report.check(
        target.delivered_lines > 0,
        f"prod-eu's {target.delivered_lines} audit Events delivered to {group}, stream {target.audit_stream} "
        "(EKS does this about a minute after each call)",
    )
    admin = _kubeconfig_for(env, "admin", env.cluster.admin_token)
    args = ["activity", name, "-n", "agents", "--kubeconfig", admin, "--eks-cluster", CLUSTER]
    args += ["--region", target.region, "--endpoint-url", aws.moto.url]
    with _reader_credentials():
        code, output = run_cli(report, args)
    report.check(code == 0 and f"from CloudWatch Logs {group}" in output, f"read from {group}")
    calls = [(row[1], row[3], row[4], row[5]) for row in _activity_rows(output) if len(row) >= 7]
    mine = [(verb, obj) for verb, obj, _, outcome in calls if outcome == "allowed by this grant"]
    report.check(
        mine == [("patch", "payments/checkout")],
        "its one restart (patch payments/checkout), allowed by this grant: the authorization reason names "
        "the grant's RoleBinding",
    )
    refused = sorted(obj for verb, obj, code_, outcome in calls if outcome == "refused" and code_ == "403")
    report.check(
        refused == ["orders/checkout", "payments/ledger"],
        "and the two refused attempts (payments/ledger, orders/checkout), by the grant's ServiceAccount "
        "during its window",
    )
    report.check(
        len(calls) == len(mine) + len(refused),
        f"nothing else: {len(calls)} calls by the grant's identity",
    )


register("eks", eks)
