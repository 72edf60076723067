"""Stand-ins for the world outside the operator's cluster, for `jitgrant demo --scenario eks` and the tests.

- **AWS**: moto in server mode on 127.0.0.1 for STS, IAM and EKS (the target role and the EKS
  cluster are created there), and `PresignedSTS` for the one call moto cannot answer (a presigned
  GetCallerIdentity: what EKS does with a bearer token).
- **EKS clusters**: each one a second `EmbeddedCluster` that authenticates EKS tokens with
  `verify_eks_token` and maps the target role to `jitgrant:{{SessionName}}` in group
  `jitgrant:operators`, as an access entry would. That group gets exactly docs/eks.md's target
  permissions (`jitgrant.permissions.TARGET_*`: read RoleBindings, write them, bind the allowlist,
  and ServiceAccounts and their tokens only in the grants namespace), so the API server there
  enforces least privilege and the `bind` allowlist just as in the operator's own cluster. Each
  writes an audit log, which `deliver_audit_log` puts into CloudWatch Logs on moto as EKS
  control-plane logging does.
- **An OIDC issuer** on https://127.0.0.1 (discovery + JWKS, an RSA key), like the one a CI system
  gives its jobs, for external agents that have no identity in any cluster.

moto's DescribeCluster answers with a made-up endpoint and CA data that is not a PEM certificate,
so the EKSAccess built here points each cluster name at its stand-in's HTTPS URL and CA through
`endpoint_overrides`; DescribeCluster itself is still called against moto.

moto is imported only when the stand-ins start: it is a development dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import socket
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api, RbacAuthorizationV1Api

from embedkube import EmbeddedCluster, User
from jitgrant.clusters.connection import ClusterConnection, KubeconfigToken
from jitgrant.clusters.eks import EKSAccess, RegionEndpoints
from jitgrant.clusters.own import ClusterApi
from jitgrant.clusters.registry import TargetClusters
from jitgrant.permissions import (
    GRANT_WRITE_PERMISSIONS,
    GRANTABLE_CLUSTER_ROLE_PERMISSIONS,
    TARGET_CLUSTER_PERMISSIONS,
    TARGET_GRANTS_NAMESPACE_PERMISSIONS,
    as_rbac_rules,
)
from jitgrant.reactor.runtime import Runtime
from jitgrant_testing.darkproxy import DarkableProxy
from jitgrant_testing.eks_authenticator import verify_eks_token
from jitgrant_testing.environment import GRANTS_NAMESPACE, deployment_manifest
from jitgrant_testing.hangproxy import HangProxy
from jitgrant_testing.oidc import OIDCIssuer
from jitgrant_testing.presigned_sts import PresignedSTS

T = TypeVar("T")

REGION = "eu-west-1"
ACCOUNT = "111122223333"
OPERATORS_GROUP = "jitgrant:operators"
# The access entry's username template: the cluster's audit log names the request's session.
USERNAME_TEMPLATE = "jitgrant:{{SessionName}}"
# The operator's own credentials (what IRSA would give it); moto accepts any key.
OPERATOR_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
OPERATOR_SECRET = "operator-secret-wJalrXUtnFEMI"  # moto does not check secrets

log = logging.getLogger(__name__)


class ServiceLoop:
    """An event loop in a daemon thread for the small HTTP stand-ins (STS, OIDC issuer)."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="jitgrant-standins", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()


class MotoServer:
    """moto in server mode on 127.0.0.1 (STS, IAM, EKS), reached over real HTTP."""

    def __init__(self) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:  # pragma: no cover - moto ships with the dev extras
            raise RuntimeError(
                "the EKS stand-ins need moto[server]: pip install 'jitgrant[dev]' (make demo does)"
            ) from exc
        # moto logs every request through werkzeug; the scenario prints its own story.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        # moto's backends live in this process, shared by every server in it: start from nothing.
        reset = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310 - http://127.0.0.1
        with urllib.request.urlopen(reset, timeout=10) as response:  # noqa: S310
            response.read()

    def stop(self) -> None:
        self._server.stop()

    def operator_session(self) -> boto3.Session:
        return boto3.Session(
            aws_access_key_id=OPERATOR_KEY_ID, aws_secret_access_key=OPERATOR_SECRET, region_name=REGION
        )

    def admin_client(self, service: str, *, account: str = ACCOUNT, region: str = REGION) -> Any:
        """A client acting in `account` (moto keeps one backend per account, as AWS does)."""
        sts = self.operator_session().client("sts", region_name=region, endpoint_url=self.url)
        admin = sts.assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/platform-admin", RoleSessionName="setup"
        )
        credentials = admin["Credentials"]
        return boto3.client(
            service,  # type: ignore[call-overload]
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )

    def create_target_role(self, name: str, *, account: str = ACCOUNT) -> str:
        """The role the operator assumes, with the trust policy docs/eks.md describes (moto ignores it)."""
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::999988887777:role/jitgrant-operator"},
                    "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                    "Condition": {"StringLike": {"sts:SourceIdentity": "*"}},
                }
            ],
        }
        iam = self.admin_client("iam", account=account)
        arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        return arn

    def create_eks_cluster(self, name: str, *, region: str = REGION, account: str = ACCOUNT) -> None:
        eks = self.admin_client("eks", account=account, region=region)
        eks.create_cluster(
            name=name,
            roleArn=f"arn:aws:iam::{account}:role/eks-cluster",
            resourcesVpcConfig={"subnetIds": []},
        )


@dataclass
class EKSStandIn:
    """An embedded cluster playing EKS cluster `name`: EKS tokens in, access-entry-style mapping."""

    name: str
    region: str
    role_arn: str
    grantable_cluster_roles: Sequence[Mapping[str, Any]]
    namespaces: Sequence[str]
    deployments: Sequence[tuple[str, str]]
    # Where the cluster writes its audit.k8s.io Events (kube-apiserver's --audit-log-path); None: none.
    audit_log: Path | None = None
    cluster: EmbeddedCluster = field(init=False)
    sts: PresignedSTS = field(init=False)
    # EKS names the audit stream kube-apiserver-audit-<32 hex>; lines of the log delivered so far.
    audit_stream: str = field(default_factory=lambda: f"kube-apiserver-audit-{uuid.uuid4().hex}")
    delivered_lines: int = 0
    # Every identity the cluster authenticated from an EKS token: (username, groups).
    authenticated: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    _admin: ApiClient | None = field(init=False, default=None, repr=False)

    def start(self, *, loop: ServiceLoop, moto_url: str) -> None:
        self.cluster = EmbeddedCluster(name=self.name, audit_log=self.audit_log)
        self.cluster.start()
        self.sts = PresignedSTS(moto_url=moto_url)
        loop.run(self.sts.start())
        mapping = {self.role_arn: (USERNAME_TEMPLATE, [OPERATORS_GROUP])}

        async def authenticate(token: str) -> User | None:
            found = await verify_eks_token(
                token, cluster_name=self.name, sts_endpoint_url=self.sts.url, role_mapping=mapping
            )
            if found is None:
                return None
            self.authenticated.append(found)
            return User(name=found[0], groups=found[1])

        self.cluster.add_authenticator(authenticate)
        self._install()

    def stop(self, *, loop: ServiceLoop) -> None:
        """Stop whatever `start` got to."""
        try:
            if hasattr(self, "sts"):
                loop.run(self.sts.stop())
        finally:
            if self._admin is not None:
                self._admin.close()
                self._admin = None
            if hasattr(self, "cluster"):
                self.cluster.stop()

    @property
    def admin(self) -> ApiClient:
        """One admin client for the stand-in (each ApiClient holds a pool: closed at stop)."""
        if self._admin is None:
            self._admin = self.cluster.api_client()
        return self._admin

    def _install(self) -> None:
        """What the platform team sets up in the target cluster before pointing a policy at it."""
        admin = self.admin
        core, rbac, apps = CoreV1Api(admin), RbacAuthorizationV1Api(admin), AppsV1Api(admin)
        for namespace in (*self.namespaces, GRANTS_NAMESPACE):
            core.create_namespace({"metadata": {"name": namespace}})
        names = tuple(str(role["metadata"]["name"]) for role in self.grantable_cluster_roles)
        roles = {
            "jitgrant-operator": as_rbac_rules(TARGET_CLUSTER_PERMISSIONS + GRANT_WRITE_PERMISSIONS),
            "jitgrant-operator-bind": as_rbac_rules(GRANTABLE_CLUSTER_ROLE_PERMISSIONS, resource_names=names),
        }
        subjects = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": OPERATORS_GROUP}]
        ref = {"apiGroup": "rbac.authorization.k8s.io"}
        for role_name, rules in roles.items():
            rbac.create_cluster_role({"metadata": {"name": role_name}, "rules": rules})
            rbac.create_cluster_role_binding(
                {
                    "metadata": {"name": role_name},
                    "roleRef": {**ref, "kind": "ClusterRole", "name": role_name},
                    "subjects": subjects,
                }
            )
        # ServiceAccounts and their tokens only in the grants namespace.
        grants_role = {"name": "jitgrant-operator", "namespace": GRANTS_NAMESPACE}
        rbac.create_namespaced_role(
            GRANTS_NAMESPACE,
            {"metadata": grants_role, "rules": as_rbac_rules(TARGET_GRANTS_NAMESPACE_PERMISSIONS)},
        )
        rbac.create_namespaced_role_binding(
            GRANTS_NAMESPACE,
            {
                "metadata": grants_role,
                "roleRef": {**ref, "kind": "Role", "name": "jitgrant-operator"},
                "subjects": subjects,
            },
        )
        for role in self.grantable_cluster_roles:
            rbac.create_cluster_role(dict(role))
        for namespace, name in self.deployments:
            apps.create_namespaced_deployment(namespace, deployment_manifest(name))

    # -- what is there ----------------------------------------------------------------------------
    def role_bindings(self, namespace: str) -> list[dict[str, Any]]:
        admin = self.admin
        items: list[dict[str, Any]] = admin.sanitize_for_serialization(
            RbacAuthorizationV1Api(admin).list_namespaced_role_binding(namespace)
        )["items"]
        return items

    def service_accounts(self, namespace: str) -> list[dict[str, Any]]:
        admin = self.admin
        items: list[dict[str, Any]] = admin.sanitize_for_serialization(
            CoreV1Api(admin).list_namespaced_service_account(namespace)
        )["items"]
        return items

    def managed(self, namespace: str) -> list[str]:
        """Every jitgrant-labelled RoleBinding and ServiceAccount in `namespace`, as kind/name."""
        objects = [("RoleBinding", b) for b in self.role_bindings(namespace)]
        objects += [("ServiceAccount", s) for s in self.service_accounts(namespace)]
        return [
            f"{kind}/{obj['metadata']['name']}"
            for kind, obj in objects
            if (obj["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == "jitgrant"
        ]


@dataclass
class AssumeRoleCall:
    """One AssumeRole the operator made, as sent (parameters) and as answered (ARN or error code)."""

    role_arn: str
    session_name: str
    source_identity: str | None
    external_id: str | None
    duration_seconds: int | None
    at: float
    assumed_role_arn: str | None = None
    error: str | None = None


def _millis(stamp: str) -> int:
    """An audit Event's RFC 3339 MicroTime as CloudWatch's milliseconds since the epoch."""
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def blackhole() -> tuple[socket.socket, str]:
    """A listening socket that never answers: connections are accepted by the kernel, then silence."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


@dataclass
class ClusterSpec:
    """One EKS target to stand in for."""

    name: str
    region: str = REGION
    role_name: str = "jitgrant-target"

    @property
    def arn(self) -> str:
        return f"arn:aws:eks:{self.region}:{ACCOUNT}:cluster/{self.name}"


@dataclass
class AWSStandIns:
    """moto, PresignedSTS, EKS stand-in clusters and (optionally) an OIDC issuer, started together.

    `runtime_hook` is for `Environment(runtime_hook=...)`: it gives the operator an EKSAccess whose
    STS and EKS calls go to moto, and (with an issuer) an OIDC verifier that trusts the issuer's CA.
    """

    clusters: Sequence[ClusterSpec] = (ClusterSpec("prod-eu"),)
    grantable_cluster_roles: Sequence[Mapping[str, Any]] = ()
    namespaces: Sequence[str] = ("payments", "orders")
    deployments: Sequence[tuple[str, str]] = (
        ("payments", "checkout"),
        ("payments", "ledger"),
        ("orders", "checkout"),
    )
    with_oidc_issuer: bool = False
    # Per-region endpoint overrides on top of moto (e.g. an STS that hangs, for one region only).
    region_endpoints: Mapping[str, RegionEndpoints] = field(default_factory=dict)
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    # Stand-in key -> API server URL to use instead of the stand-in's (e.g. one that never answers).
    # A stand-in's key is its cluster name, or NAME@REGION when two clusters share the name.
    api_overrides: Mapping[str, str] = field(default_factory=dict)
    # Stand-in keys whose API server the operator reaches through a DarkableProxy (`proxies[key]`),
    # so a test can make the cluster go dark and come back.
    dark_proxies: Sequence[str] = ()
    # (connect, read) seconds for the operator's calls to target API servers (Runtime's default if None).
    target_request_timeout: tuple[float, float] | None = None
    # Stand-in keys whose API server the operator reaches through one TLS-terminating HangProxy
    # (`hang.clusters[key].mode`): dark before TLS, or TLS completed and then silence (a stall).
    hang_proxies: Sequence[str] = ()
    hang: HangProxy | None = field(init=False, default=None)

    moto: MotoServer = field(init=False)
    loop: ServiceLoop = field(init=False)
    access: EKSAccess = field(init=False)
    issuer: OIDCIssuer | None = field(init=False, default=None)
    standins: dict[str, EKSStandIn] = field(init=False, default_factory=dict)
    # Each stand-in's audit log is <audit_dir>/<cluster>.log (EKS control-plane audit logging on).
    audit_dir: Path = field(init=False)
    assume_calls: list[AssumeRoleCall] = field(init=False, default_factory=list)
    proxies: dict[str, DarkableProxy] = field(init=False, default_factory=dict)

    def __enter__(self) -> AWSStandIns:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.loop = ServiceLoop()
        try:
            self.moto = MotoServer()
        except BaseException:
            self.loop.stop()
            raise
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.audit_dir = Path(tempfile.mkdtemp(prefix="jitgrant-eks-audit-"))
        if self.with_oidc_issuer:
            self.issuer = OIDCIssuer(directory=Path(tempfile.mkdtemp(prefix="jitgrant-oidc-")))
            self.loop.run(self.issuer.start())
        overrides: dict[str, tuple[str, bytes | None]] = {}
        roles: dict[tuple[str, str], str] = {}
        for spec in self.clusters:
            standin_key = self.key_of(spec)
            key = (ACCOUNT, spec.role_name)
            if key not in roles:
                roles[key] = self.moto.create_target_role(spec.role_name)
            self.moto.create_eks_cluster(spec.name, region=spec.region)
            standin = EKSStandIn(
                name=spec.name,
                region=spec.region,
                role_arn=roles[key],
                grantable_cluster_roles=self.grantable_cluster_roles,
                namespaces=self.namespaces,
                deployments=self.deployments,
                audit_log=self.audit_dir / f"{standin_key}.log",
            )
            self.standins[standin_key] = standin
            standin.start(loop=self.loop, moto_url=self.moto.url)
            # moto's endpoint is made up and its CA data is not a PEM certificate. Keyed by the
            # cluster's ARN, as two clusters may share a name.
            overrides[spec.arn] = (standin.cluster.https_url, standin.cluster.ca_pem)
            if standin_key in self.api_overrides:
                overrides[spec.arn] = (self.api_overrides[standin_key], None)
            if standin_key in self.dark_proxies:
                served = urlsplit(standin.cluster.https_url)
                proxy = DarkableProxy(served.hostname or "127.0.0.1", served.port or 443)
                self.proxies[standin_key] = proxy
                overrides[spec.arn] = (proxy.url, standin.cluster.ca_pem)
            if standin_key in self.hang_proxies:
                self.hang = self.hang or HangProxy()
                proxied = self.hang.add(
                    standin_key, upstream=standin.cluster.https_url, upstream_ca_pem=standin.cluster.ca_pem
                )
                overrides[spec.arn] = (proxied.url, proxied.ca_pem)
        moto = RegionEndpoints(sts=self.moto.url, eks=self.moto.url)
        self.access = EKSAccess(
            base_session=self.moto.operator_session(),
            default_endpoints=moto,
            region_endpoints={**{spec.region: moto for spec in self.clusters}, **self.region_endpoints},
            endpoint_overrides=overrides,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
        )
        for region in {spec.region for spec in self.clusters}:
            self._observe(region)

    def stop(self) -> None:
        try:
            for proxy in self.proxies.values():
                proxy.close()
            if self.hang is not None:
                self.hang.close()
            for standin in self.standins.values():
                standin.stop(loop=self.loop)
            if self.issuer is not None:
                self.loop.run(self.issuer.stop())
        finally:
            if self.issuer is not None:  # its TLS key and JWKS, in a temporary directory of its own
                shutil.rmtree(self.issuer.directory, ignore_errors=True)
            if hasattr(self, "audit_dir"):
                shutil.rmtree(self.audit_dir, ignore_errors=True)
            self.moto.stop()
            self.loop.stop()

    def key_of(self, spec: ClusterSpec) -> str:
        """The stand-in's key: its name, or NAME@REGION when another cluster has the same name."""
        shared = sum(1 for other in self.clusters if other.name == spec.name) > 1
        return f"{spec.name}@{spec.region}" if shared else spec.name

    def standin(self, name: str | None = None) -> EKSStandIn:
        return self.standins[name or self.key_of(self.clusters[0])]

    def target(self, name: str | None = None) -> dict[str, Any]:
        """A GrantPolicy's `target` for one of the stand-in clusters."""
        standin = self.standin(name)
        return {
            "type": "EKS",
            "eks": {"clusterName": standin.name, "region": standin.region, "roleArn": standin.role_arn},
        }

    def deliver_audit_log(self, name: str | None = None, *, session: boto3.Session | None = None) -> str:
        """What EKS control-plane audit logging does with the API server's log, done now (EKS takes
        about a minute): the stand-in's new Events into CloudWatch Logs on moto, log group
        `/aws/eks/<name>/cluster`, one stream `kube-apiserver-audit-<hex>`, one Event per message,
        stamped with its stageTimestamp. Returns the log group."""
        standin = self.standin(name)
        assert standin.audit_log is not None
        logs = (session or self.moto.operator_session()).client(
            "logs", region_name=standin.region, endpoint_url=self.moto.url
        )
        group = f"/aws/eks/{standin.name}/cluster"
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=group)
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_stream(logGroupName=group, logStreamName=standin.audit_stream)
        lines = standin.audit_log.read_text().splitlines()[standin.delivered_lines :]
        stamped = sorted(
            (_millis(json.loads(line)["stageTimestamp"]), line) for line in lines if line.strip()
        )
        events: list[Any] = [{"timestamp": stamp, "message": line} for stamp, line in stamped]
        for start in range(0, len(events), 1000):  # PutLogEvents takes up to 10,000 per call
            logs.put_log_events(
                logGroupName=group, logStreamName=standin.audit_stream, logEvents=events[start : start + 1000]
            )
        standin.delivered_lines += len(lines)
        return group

    def runtime_hook(self, runtime: Runtime) -> None:
        assert isinstance(runtime.own, ClusterApi)
        configuration = runtime.own.client.configuration
        own = ClusterConnection(
            name=runtime.own.name,
            server=str(configuration.host),
            ca_pem=Path(configuration.ssl_ca_cert).read_bytes() if configuration.ssl_ca_cert else None,
            token_provider=KubeconfigToken(configuration),
        )
        runtime.targets = TargetClusters(own=own, eks=self.access)
        if self.target_request_timeout is not None:
            runtime.settings = runtime.settings.model_copy(
                update={"target_request_timeout": self.target_request_timeout}
            )
        if self.issuer is not None:
            runtime.oidc = self.issuer.verifier()

    def _observe(self, region: str) -> None:
        """Record every AssumeRole through the operator's STS client: what was asked, what came back.

        moto ignores SourceIdentity (it neither checks nor returns it), so the parameters as they
        leave botocore are the evidence that the requester was passed.
        """
        events = self.access.sts_client(region).meta.events

        def asked(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            call = AssumeRoleCall(
                role_arn=str(params.get("RoleArn")),
                session_name=str(params.get("RoleSessionName")),
                source_identity=params.get("SourceIdentity"),
                external_id=params.get("ExternalId"),
                duration_seconds=params.get("DurationSeconds"),
                at=time.monotonic(),
            )
            context["jitgrant_demo_call"] = call
            self.assume_calls.append(call)

        def answered(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            call = context.get("jitgrant_demo_call")
            if call is None:
                return
            if "Error" in parsed:
                call.error = str(parsed["Error"].get("Code"))
            else:
                call.assumed_role_arn = str((parsed.get("AssumedRoleUser") or {}).get("Arn"))

        def broke(exception: Exception, context: dict[str, Any], **_: Any) -> None:
            call = context.get("jitgrant_demo_call")
            if call is not None:
                call.error = type(exception).__name__  # a timeout or connection error: no answer

        events.register("before-parameter-build.sts.AssumeRole", asked)
        events.register("after-call.sts.AssumeRole", answered)
        events.register("after-call-error.sts.AssumeRole", broke)
