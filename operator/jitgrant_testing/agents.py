"""The embedded cluster set up for agents (client and MCP tests, the MCP demo): two agents with the
RBAC the chart's jitgrant-requester role gives (file, read and release their requests, read
GrantPolicies), approvers in group sre-oncall, and a kubeconfig file per agent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from kubernetes.client import RbacAuthorizationV1Api

from jitgrant.models import API_GROUP
from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests

NS = "agents"
AGENT = "oncall-agent"
OTHER = "other-agent"  # a second agent in the same namespace, named by the same policies
REASON = "INC-4711 checkout pods stuck"
APPROVER = "alice"


@dataclass
class Agents:
    env: Environment
    directory: Path

    def kubeconfig(self, name: str = AGENT) -> Path:
        path = self.directory / f"{name}.kubeconfig"
        if not path.exists():
            self.env.cluster.write_kubeconfig(path, token=self.token(name), namespace=NS)
        return path

    def token(self, name: str = AGENT) -> str:
        return self.env.service_account_token(NS, name)


def policies_for(name: str) -> dict[str, object]:
    """Both example policies, widened to name the second agent as well."""
    return {"namespace": NS, "name": name}


def start_environment(directory: Path) -> Iterator[Agents]:
    with Environment(sweep_interval=timedelta(seconds=1)) as env:
        env.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
        for path in (EXAMPLES / "oncall-restart" / "policy.yaml", EXAMPLES / "prod-approval" / "policy.yaml"):
            for policy in load_manifests(path):
                policy["spec"]["requesters"]["serviceAccounts"].append(policies_for(OTHER))
                env.apply([policy])
        env.create_deployment("payments", "checkout")
        for agent in (AGENT, OTHER):
            env.allow_to_request(NS, service_account=agent)
            allow_agent_tools(env, agent)
        env.allow_to_approve(NS, group="sre-oncall")
        yield Agents(env=env, directory=directory)


def allow_agent_tools(env: Environment, service_account: str) -> None:
    """What release and list_grantable need beyond filing: patch requests, read GrantPolicies."""
    env.allow(
        NS,
        role="jitgrant-release",
        rules=[{"apiGroups": [API_GROUP], "resources": ["accessrequests"], "verbs": ["patch"]}],
        service_account=service_account,
    )
    rbac = RbacAuthorizationV1Api(env.admin)
    name = f"jitgrant-policy-reader-{service_account}"
    rbac.create_cluster_role(
        {
            "metadata": {"name": name},
            "rules": [
                {"apiGroups": [API_GROUP], "resources": ["grantpolicies"], "verbs": ["get", "list", "watch"]}
            ],
        }
    )
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": NS}],
        }
    )
