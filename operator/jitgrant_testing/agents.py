"""The embedded cluster set up for agents (client and MCP tests, the MCP demo): two agents bound to
the chart's own jitgrant-requester (file, follow, release their requests) and jitgrant-policy-reader
(read GrantPolicies) ClusterRoles, approvers in group sre-oncall bound to jitgrant-approver, and a
kubeconfig file per agent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests
from jitgrant_testing.playground import chart_user_cluster_roles

NS = "agents"
AGENT = "oncall-agent"
OTHER = "other-agent"  # a second agent in the same namespace, named by the same policies
REASON = "INC-4711 checkout pods stuck"
APPROVER_GROUP = "sre-oncall"


@dataclass
class Agents:
    env: Environment
    directory: Path

    def kubeconfig(self, name: str = AGENT) -> Path:
        """A kubeconfig (0600) for ServiceAccount agents/<name>, its context namespace agents."""
        path = self.directory / f"{name}.kubeconfig"
        if not path.exists():
            self.env.cluster.write_kubeconfig(path, token=self.token(name), namespace=NS)
        return path

    def token(self, name: str = AGENT) -> str:
        return self.env.service_account_token(NS, name)


def start_environment(directory: Path) -> Iterator[Agents]:
    with Environment(sweep_interval=timedelta(seconds=1)) as env:
        env.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
        for path in (EXAMPLES / "oncall-restart" / "policy.yaml", EXAMPLES / "prod-approval" / "policy.yaml"):
            for policy in load_manifests(path):
                policy["spec"]["requesters"]["serviceAccounts"].append({"namespace": NS, "name": OTHER})
                env.apply([policy])
        env.create_deployment("payments", "checkout")
        env.apply(chart_user_cluster_roles())
        for agent in (AGENT, OTHER):
            bind_agent(env, agent)
        env.apply(
            [_binding("ClusterRoleBinding", "jitgrant-approver", {"kind": "Group", "name": APPROVER_GROUP})]
        )
        yield Agents(env=env, directory=directory)


def bind_agent(env: Environment, service_account: str) -> None:
    """As the chart's comments say: jitgrant-requester in the agent's namespace, jitgrant-policy-reader
    cluster-wide."""
    env.service_account_token(NS, service_account)  # creates the ServiceAccount
    subject = {"kind": "ServiceAccount", "name": service_account, "namespace": NS}
    env.apply(
        [
            _binding("RoleBinding", "jitgrant-requester", subject, namespace=NS),
            _binding("ClusterRoleBinding", "jitgrant-policy-reader", subject),
        ]
    )


def _binding(
    kind: str, role: str, subject: dict[str, str], *, namespace: str | None = None
) -> dict[str, Any]:
    if subject["kind"] != "ServiceAccount":
        subject = {**subject, "apiGroup": "rbac.authorization.k8s.io"}
    metadata: dict[str, Any] = {"name": f"{role}-{subject['name']}"}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [subject],
    }
