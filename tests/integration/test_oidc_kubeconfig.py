"""An external agent, proven by an OIDC ID token (a local issuer on https://127.0.0.1), gets a grant in an
EKS target (an embedded cluster authenticating EKS tokens; the role assumed on moto in server mode):
a ServiceAccount made for the grant in the target's grants namespace, a TokenRequest token, and a
kubeconfig Secret in the operator's grants namespace that only the identity which filed the request
may read. The kubeconfig is loaded by the
official Kubernetes client and used; when the grant ends nothing of it remains in either cluster."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes.config
import pytest
import yaml
from kubernetes.client import (
    ApiClient,
    AppsV1Api,
    AuthenticationV1Api,
    CoreV1Api,
    CustomObjectsApi,
    RbacAuthorizationV1Api,
)
from kubernetes.client.exceptions import ApiException

from embedkube import User
from jitgrant.models.vocabulary import OWNER_SEAL_ANNOTATION
from jitgrant_testing.aws import AWSStandIns, EKSStandIn
from jitgrant_testing.environment import EXAMPLES, GRANTS_NAMESPACE, Environment, load_manifests

from .conftest import wait_for_phase, wait_until

NS = "agents"
SUBJECT = "repo:acme/checkout:ref:refs/heads/main"
FILER = "release-bot"


@dataclass
class World:
    aws: AWSStandIns
    env: Environment
    filer: ApiClient  # the agent's runner in the operator's cluster: may file requests, nothing else
    other: ApiClient  # another requester in the same namespace

    @property
    def target(self) -> EKSStandIn:
        return self.aws.standin()

    def file(self, name: str, *, duration: str) -> dict[str, Any]:
        assert self.aws.issuer is not None
        manifest = {
            "apiVersion": "jitgrant.dev/v1alpha1",
            "kind": "AccessRequest",
            "metadata": {
                "name": name,
                "namespace": NS,
                "annotations": {"jitgrant.dev/oidc-token": self.aws.issuer.mint(SUBJECT)},
            },
            "spec": {
                "policy": "eks-external",
                "namespace": "payments",
                "clusterRole": "jit-restart-checkout",
                "duration": duration,
                "justification": "INC-4711 checkout pods stuck",
            },
        }
        return self.env.create_request(manifest, client=self.filer)

    def kubeconfig_of(self, obj: dict[str, Any], *, reader: ApiClient | None = None) -> dict[str, Any]:
        secret = CoreV1Api(reader or self.filer).read_namespaced_secret(
            obj["status"]["grant"]["kubeconfigSecret"], GRANTS_NAMESPACE
        )
        config: dict[str, Any] = yaml.safe_load(base64.b64decode(secret.data["kubeconfig"]))
        return config

    def nothing_left(self, obj: dict[str, Any]) -> None:
        """Neither cluster holds anything of the grant any more."""
        grant = obj["status"]["grant"]
        left = set(self.target.managed("payments")) | set(self.target.managed(GRANTS_NAMESPACE))
        assert not left & {f"RoleBinding/{grant['roleBinding']}", f"ServiceAccount/{grant['serviceAccount']}"}
        own_core, own_rbac = CoreV1Api(self.env.admin), RbacAuthorizationV1Api(self.env.admin)
        reader = grant["kubeconfigSecret"].removesuffix("-kubeconfig") + "-reader"
        for read, name in (
            (own_core.read_namespaced_secret, grant["kubeconfigSecret"]),
            (own_rbac.read_namespaced_role, reader),
            (own_rbac.read_namespaced_role_binding, reader),
        ):
            with pytest.raises(ApiException) as gone:
                read(name, GRANTS_NAMESPACE)
            assert gone.value.status == 404, name


@pytest.fixture
def world() -> Iterator[World]:
    grantable = load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml")
    with (
        AWSStandIns(grantable_cluster_roles=grantable, with_oidc_issuer=True) as aws,
        Environment(runtime_hook=aws.runtime_hook, sweep_interval=timedelta(hours=1)) as env,
    ):
        assert aws.issuer is not None
        env.apply(
            [
                {
                    "apiVersion": "jitgrant.dev/v1alpha1",
                    "kind": "GrantPolicy",
                    "metadata": {"name": "eks-external"},
                    "spec": {
                        "requesters": {"oidc": [aws.issuer.requester(SUBJECT)]},
                        "target": aws.target(),
                        "namespaces": ["payments"],
                        "grants": [{"clusterRole": "jit-restart-checkout"}],
                    },
                }
            ]
        )
        for user in (FILER, "other-bot"):
            env.allow_to_request(NS, user=user)
        filer = env.cluster.api_client(token=env.cluster.add_user(User(name=FILER, uid="uid-filer")))
        other = env.cluster.api_client(token=env.cluster.add_user(User(name="other-bot", uid="uid-other")))
        yield World(aws=aws, env=env, filer=filer, other=other)
        filer.close()
        other.close()


def restart(client: ApiClient, namespace: str, name: str) -> int:
    try:
        AppsV1Api(client).patch_namespaced_deployment(
            name,
            namespace,
            {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "t"}}}}},
        )
    except ApiException as exc:
        return int(exc.status)
    return 200


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def test_the_kubeconfig_works_with_the_official_client_only_for_the_grant_and_leaves_nothing(
    world: World,
) -> None:
    world.file("external", duration="8s")
    obj = wait_for_phase(world.env, NS, "external", "Active")
    grant = obj["status"]["grant"]
    assert obj["spec"]["requester"]["provenBy"] == "oidc"
    assert "jitgrant.dev/oidc-token" not in (obj["metadata"].get("annotations") or {})

    config = world.kubeconfig_of(obj)
    [cluster] = config["clusters"]
    assert cluster["cluster"]["server"] == world.target.cluster.https_url
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == world.target.cluster.ca_pem
    [context] = config["contexts"]
    assert context["context"]["namespace"] == "payments"
    token = config["users"][0]["user"]["token"]
    claims = claims_of(token)
    assert claims["sub"] == f"system:serviceaccount:{GRANTS_NAMESPACE}:{grant['serviceAccount']}"
    # The identity objects live in the grants namespaces (the only place the operator may mint a
    # token or touch a Secret), and the record says so: the client reads the Secret from there.
    where = {(ref["kind"], ref["name"]): ref["namespace"] for ref in grant["objects"]}
    reader = grant["kubeconfigSecret"].removesuffix("-kubeconfig") + "-reader"
    assert where == {
        ("ServiceAccount", grant["serviceAccount"]): GRANTS_NAMESPACE,
        ("RoleBinding", grant["roleBinding"]): "payments",
        ("Secret", grant["kubeconfigSecret"]): GRANTS_NAMESPACE,
        ("Role", reader): GRANTS_NAMESPACE,
        ("RoleBinding", reader): GRANTS_NAMESPACE,
    }
    assert [s.metadata.name for s in CoreV1Api(world.env.admin).list_namespaced_secret(NS).items] == []
    assert claims["exp"] - claims["iat"] == 600  # the API server's minimum covers an 8 s grant

    agent = kubernetes.config.new_client_from_config_dict(config)  # the official loader, TLS verified
    review = AuthenticationV1Api(agent).create_self_subject_review(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    )
    assert review.status.user_info.username == claims["sub"]
    assert restart(agent, "payments", "checkout") == 200
    assert restart(agent, "payments", "ledger") == 403
    assert restart(agent, "orders", "checkout") == 403
    with pytest.raises(ApiException) as listing:
        CoreV1Api(agent).list_namespaced_secret("payments")
    assert listing.value.status == 403

    # Only the identity that filed the request can read the Secret; another requester cannot.
    with pytest.raises(ApiException) as refused:
        world.kubeconfig_of(obj, reader=world.other)
    assert refused.value.status == 403
    agent_sa = world.env.client_for_service_account(NS, "oncall-agent")
    with pytest.raises(ApiException) as refused_sa:
        world.kubeconfig_of(obj, reader=agent_sa)
    assert refused_sa.value.status == 403

    ended = wait_for_phase(world.env, NS, "external", "Expired")
    world.nothing_left(ended)
    assert world.target.managed("payments") == []
    # The token's 10 minutes are not over, but its ServiceAccount is gone: it authenticates nobody.
    for namespace, deployment in (("payments", "checkout"), ("payments", "ledger"), ("orders", "checkout")):
        assert restart(agent, namespace, deployment) == 401
    with pytest.raises(ApiException) as after:
        world.kubeconfig_of(ended)
    assert after.value.status in (403, 404)
    agent.close()
    agent_sa.close()


def test_revoking_or_deleting_removes_the_kubeconfig_and_its_identity_at_once(world: World) -> None:
    world.file("revoked", duration="10m")
    world.file("deleted", duration="10m")
    revoked = wait_for_phase(world.env, NS, "revoked", "Active")
    deleted = wait_for_phase(world.env, NS, "deleted", "Active")
    agents = {
        name: kubernetes.config.new_client_from_config_dict(world.kubeconfig_of(obj))
        for name, obj in (("revoked", revoked), ("deleted", deleted))
    }
    assert all(restart(agent, "payments", "checkout") == 200 for agent in agents.values())
    assert len(world.target.managed("payments")) == 2  # a RoleBinding each
    assert len(world.target.managed(GRANTS_NAMESPACE)) == 2  # and a ServiceAccount each

    world.env.annotate_request(
        NS, "revoked", {"jitgrant.dev/revoke": "incident closed"}, client=world.env.admin
    )
    world.nothing_left(wait_for_phase(world.env, NS, "revoked", "Revoked"))
    assert restart(agents["revoked"], "payments", "checkout") == 401
    assert restart(agents["deleted"], "payments", "checkout") == 200  # the other grant is untouched

    CustomObjectsApi(world.env.admin).delete_namespaced_custom_object(
        "jitgrant.dev", "v1alpha1", NS, "accessrequests", "deleted"
    )

    def gone() -> bool:
        try:
            world.env.get_request(NS, "deleted")
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_until(gone, what="the deleted request to be released by its finalizer")
    world.nothing_left(deleted)
    assert world.target.managed("payments") == [] == world.target.managed(GRANTS_NAMESPACE)
    assert restart(agents["deleted"], "payments", "checkout") == 401
    for agent in agents.values():
        agent.close()


def test_a_window_that_closed_while_the_operator_was_down_leaves_nothing_either(world: World) -> None:
    world.file("outage", duration="3s")
    active = wait_for_phase(world.env, NS, "outage", "Active")
    agent = kubernetes.config.new_client_from_config_dict(world.kubeconfig_of(active))
    assert restart(agent, "payments", "checkout") == 200

    world.env.operator.stop()
    expires_at = datetime.fromisoformat(active["status"]["expiresAt"].replace("Z", "+00:00"))
    wait_until(lambda: datetime.now(UTC) > expires_at + timedelta(seconds=1), what="the window to close")
    assert restart(agent, "payments", "checkout") == 200  # nobody has revoked it yet
    world.env.start_operator()

    world.nothing_left(wait_for_phase(world.env, NS, "outage", "Expired"))
    assert world.target.managed("payments") == [] == world.target.managed(GRANTS_NAMESPACE)
    assert restart(agent, "payments", "checkout") == 401
    agent.close()


def test_a_planted_kubeconfig_secret_is_never_handed_out_and_never_touched(world: World) -> None:
    """Someone with `create secrets` in the grants namespace plants a Secret under the predictable
    kubeconfig name, labelled as jitgrant's, pointing at a server of their own. The request fails
    (NameCollision), the agent is handed nothing, and the planted Secret is left as it was."""
    runtime = world.env.operator.runtime
    assert runtime is not None
    real = runtime.own.call  # type: ignore[attr-defined]
    core = CoreV1Api(world.env.admin)
    planted: list[str] = []
    evil = yaml.safe_dump({"clusters": [{"name": "x", "cluster": {"server": "https://attacker.invalid"}}]})

    async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(fn, "__name__", "") == "create_namespaced_secret" and not planted:
            namespace, body = args[0], args[1]
            metadata = body["metadata"]
            planted.append(metadata["name"])
            assert namespace == GRANTS_NAMESPACE
            secret = {
                "metadata": {
                    "name": metadata["name"],
                    "labels": dict(metadata["labels"]),
                    "annotations": {
                        k: v for k, v in metadata["annotations"].items() if k != OWNER_SEAL_ANNOTATION
                    },
                },
                "stringData": {"kubeconfig": evil},
            }
            await asyncio.to_thread(core.create_namespaced_secret, namespace, secret)
        return await real(fn, *args, **kwargs)

    runtime.own.call = call  # type: ignore[attr-defined]
    world.file("planted", duration="10m")
    failed = wait_for_phase(world.env, NS, "planted", "Failed")
    assert planted, "the operator never tried to create the kubeconfig Secret"
    assert failed["status"]["reason"] == "NameCollision", failed["status"]
    assert planted[0] in failed["status"]["message"]
    left = core.read_namespaced_secret(planted[0], GRANTS_NAMESPACE)
    assert base64.b64decode(left.data["kubeconfig"]).decode() == evil  # untouched, not deleted
    # Nothing of the grant is left in the target either.
    wait_until(
        lambda: world.target.managed("payments") == [] == world.target.managed(GRANTS_NAMESPACE),
        timeout=5,
        what="the target to be clean",
    )
