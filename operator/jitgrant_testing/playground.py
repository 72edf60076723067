"""`jitgrant run --embedded`: a cluster to try jitgrant in, with everything a newcomer needs.

The embedded cluster with the operator, the example policies and ClusterRole, sample Deployments,
and three kubeconfigs: an agent (ServiceAccount agents/oncall-agent), an approver (alice, group
sre-oncall) and an admin. The agent and the approver get their rights only from the chart's own
`jitgrant-requester` and `jitgrant-approver` ClusterRoles, bound as the chart's comments say, so
what works here works on a default install, with no hand-written RBAC.

The state directory holds bearer tokens: by default a fresh temporary directory removed on exit
(`--keep` keeps it); a `--state-dir` the user names is kept.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from embedkube import User
from jitgrant.notify import Notifier, NotifyConfig
from jitgrant.reactor.runtime import Runtime
from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests, repository_file

USER_CLUSTER_ROLES = repository_file(
    "user-clusterroles.yaml", "charts/jitgrant/templates/user-clusterroles.yaml"
)
AGENT_NAMESPACE = "agents"
AGENT = "oncall-agent"
APPROVER = "alice"
APPROVER_GROUP = "sre-oncall"
SAMPLE_DEPLOYMENTS = (("payments", "checkout"), ("payments", "ledger"))
TOKEN_SECONDS = 24 * 3600


def chart_user_cluster_roles(path: Path = USER_CLUSTER_ROLES) -> list[dict[str, Any]]:
    """The chart's requester/approver ClusterRoles: the template without its comment and `{{ }}` lines."""
    text = re.sub(r"\{\{-? */\*.*?\*/ *-?\}\}", "", path.read_text(), flags=re.DOTALL)
    text = "\n".join(line for line in text.splitlines() if "{{" not in line and "}}" not in line)
    roles = [doc for doc in yaml.safe_load_all(text) if doc]
    for role in roles:
        role["metadata"].pop("labels", None)
    return roles


@dataclass
class Playground:
    state_dir: Path | None = None
    keep: bool = False
    metrics_port: int | None = None
    health_port: int | None = None
    audit_stdout: bool = False
    # `jitgrant run`'s flags that mean the same here, so notifications and the rest can be tried locally.
    notify_config: NotifyConfig | None = None
    inline_rules: bool = False
    sweep_interval: timedelta | None = None
    audit_config: Path | None = None

    env: Environment = field(init=False)
    notifier: Notifier | None = field(init=False, default=None)
    kubeconfigs: dict[str, Path] = field(init=False, default_factory=dict)
    _owned: bool = field(init=False, default=False)

    def __enter__(self) -> Playground:
        self._owned = self.state_dir is None
        directory = self.state_dir or Path(tempfile.mkdtemp(prefix="jitgrant-playground-"))
        directory.mkdir(parents=True, exist_ok=True)
        self.state_dir = directory
        try:
            optional: dict[str, Any] = {}
            if self.sweep_interval is not None:
                optional["sweep_interval"] = self.sweep_interval
            self.env = Environment(
                state_dir=directory,
                audit_stdout=self.audit_stdout,
                metrics_port=self.metrics_port,
                health_port=self.health_port,
                inline_rules=self.inline_rules,
                audit_config=self.audit_config,
                runtime_hook=self._attach_notifier if self.notify_config is not None else None,
                **optional,
            )
            self.env.__enter__()
            try:
                self._set_up()
            except BaseException:
                self.env.stop()
                raise
        except BaseException:
            self._close_notifier()
            self._clean()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.env.stop()
        finally:
            self._close_notifier()
            self._clean()

    def _attach_notifier(self, runtime: Runtime) -> None:
        """As `jitgrant run --notify-config` does (the operator restarts reuse the one notifier)."""
        assert self.notify_config is not None
        if self.notifier is None:
            self.notifier = Notifier.from_config(self.notify_config, registry=runtime.metrics.registry)
        runtime.notifier = self.notifier

    def _close_notifier(self) -> None:
        if self.notifier is not None:
            self.notifier.close()
            self.notifier = None

    def _clean(self) -> None:
        if self._owned and not self.keep and self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return self.env.cluster.https_url

    def _set_up(self) -> None:
        env = self.env
        env.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
        env.apply(load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml"))
        env.apply(load_manifests(EXAMPLES / "prod-approval" / "policy.yaml"))
        for namespace, name in SAMPLE_DEPLOYMENTS:
            env.create_deployment(namespace, name)
        env.apply(chart_user_cluster_roles())
        agent = _sa(AGENT_NAMESPACE, AGENT)
        env.apply([_binding("RoleBinding", "jitgrant-requester", AGENT_NAMESPACE, agent)])
        env.apply([_binding("ClusterRoleBinding", "jitgrant-policy-reader", None, agent)])
        env.apply([_binding("ClusterRoleBinding", "jitgrant-approver", None, _group(APPROVER_GROUP))])
        assert self.state_dir is not None
        tokens = {
            "agent": env.service_account_token(AGENT_NAMESPACE, AGENT, seconds=TOKEN_SECONDS),
            "approver": env.cluster.add_user(
                User(name=APPROVER, uid=f"uid-{APPROVER}", groups=(APPROVER_GROUP,))
            ),
            "admin": env.cluster.admin_token,
        }
        # Each identity its own context, user and (shared) cluster name, so KUBECONFIG=a:b keeps both
        # (kubectl's merge keeps the first entry of each name), and one merged file with all three.
        configs = {
            who: _named(env.cluster.kubeconfig(token=token, namespace=AGENT_NAMESPACE), who)
            for who, token in tokens.items()
        }
        merged = {
            **configs["agent"],
            "users": [user for config in configs.values() for user in config["users"]],
            "contexts": [context for config in configs.values() for context in config["contexts"]],
        }
        for who, config in [*configs.items(), ("merged", merged)]:
            path = self.state_dir / f"{who}.kubeconfig"
            path.touch(mode=0o600)  # bearer tokens: never readable by others, not even for a moment
            path.write_text(yaml.safe_dump(config))
            self.kubeconfigs[who] = path

    def banner(self) -> str:
        k = self.kubeconfigs
        removed = " (removed on exit; --keep keeps them)" if self._owned and not self.keep else ""
        return f"""\
embedded cluster at {self.url} (HTTPS; the kubeconfigs carry its CA)
kubeconfigs in {self.state_dir}{removed}:
  agent     {k["agent"]}  (ServiceAccount {AGENT_NAMESPACE}/{AGENT}, ClusterRole jitgrant-requester)
  approver  {k["approver"]}  ({APPROVER}, group {APPROVER_GROUP}, ClusterRole jitgrant-approver)
  admin     {k["admin"]}
  all three {k["merged"]}  (contexts {", ".join(context_name(w) for w in ("agent", "approver", "admin"))})
policies oncall-restart (auto-approved) and prod-restart (needs an approver); Deployments
{", ".join(f"{ns}/{name}" for ns, name in SAMPLE_DEPLOYMENTS)}; audit trail: {self.env.audit_file}

try it:
  KUBECONFIG={k["agent"]} jitgrant request --policy prod-restart --target-namespace payments \\
      --cluster-role jit-restart-checkout --for 10m --justification "INC-1 checkout stuck" --wait
  KUBECONFIG={k["approver"]} jitgrant list --pending
  KUBECONFIG={k["approver"]} jitgrant describe NAME # then: jitgrant approve NAME --reason ...
  KUBECONFIG={k["approver"]} jitgrant console       # or approve in the browser (docs/console.md)
press Ctrl-C to stop
"""


CLUSTER_NAME = "jitgrant-playground"


def context_name(who: str) -> str:
    return f"{who}@jitgrant"


def _named(config: dict[str, Any], who: str) -> dict[str, Any]:
    """`config` (one cluster, user and context) with the playground's names for `who`."""
    name = context_name(who)
    (cluster,), (user,), (context,) = config["clusters"], config["users"], config["contexts"]
    return {
        **config,
        "clusters": [{**cluster, "name": CLUSTER_NAME}],
        "users": [{**user, "name": name}],
        "contexts": [
            {"name": name, "context": {**context["context"], "cluster": CLUSTER_NAME, "user": name}}
        ],
        "current-context": name,
    }


def _sa(namespace: str, name: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "namespace": namespace, "name": name}


def _group(name: str) -> dict[str, str]:
    return {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def _binding(kind: str, role: str, namespace: str | None, subject: dict[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": f"{role}-playground"}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [subject],
    }
