"""Ory Hydra for the tests in this folder: the agent path proven by a real identity provider, on the real
kube-apiserver of tests/realapi (its fixtures: `control_plane`, `real_env`).

Hydra is built from its Go module (tests/hydra/build.sh, cached per version) once, after collection and
outside any test's timeout, and started once per session. Where it cannot be built (no Go toolchain, no
C compiler for its sqlite driver), every test here is skipped and the run says so in one loud line; a
build that fails on a machine that has the tools fails the tests instead.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from kubernetes.client import CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from jitgrant.models import API_GROUP, API_VERSION
from jitgrant.settings import OperatorSettings
from jitgrant_testing.controlplane import ControlPlane
from jitgrant_testing.environment import EXAMPLES, OPERATOR_NAMESPACE, load_manifests, wait_until
from jitgrant_testing.hydra import Hydra, HydraError, HydraUnavailable, MachineClient, ensure_hydra
from jitgrant_testing.realenv import RealEnvironment

HERE = Path(__file__).resolve().parent
AUDIENCE = "jitgrant"
# The operator's key cache in this tier (chart values identity.jwksCacheTTLSeconds and
# jwksRefetchIntervalSeconds): short, so rotation and deletion are measured in seconds.
KEY_CACHE_SETTINGS = {
    "jwks_cache_ttl": timedelta(seconds=6),
    "jwks_refetch_interval": timedelta(seconds=2),
}
POLICY = "hydra-agents"
CA_SECRET = "hydra-ca"  # in the operator's namespace: the issuer entry's caBundle
# The RoleBinding allow_to_request(user="agent") makes (tests/realapi/test_jitgrant.py makes it again).
AGENT_BINDING = "jitgrant-requester-agent"
_build: dict[str, object] = {}


def _ours(item: pytest.Item) -> bool:
    return HERE in Path(item.path).parents


def _unbuildable_reason() -> str | None:
    if "JITGRANT_HYDRA_BIN" in os.environ:
        return None
    if shutil.which("go") is None:
        return "no Go toolchain on PATH"
    # No C compiler (cgo, for Hydra's sqlite driver) is found by build.sh, which still reuses a
    # cached binary without one: its exit 2 skips the tests with the same kind of line.
    return None


def _skip_line(reason: str) -> str:
    return (
        f"!!! tests/realapi/hydra SKIPPED: Ory Hydra cannot be built here: {reason} "
        "(install Go >= 1.26 and a C compiler, or set JITGRANT_HYDRA_BIN to a prebuilt hydra) !!!"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _unbuildable_reason()
    if reason is None:
        return
    marker = pytest.mark.skip(reason=_skip_line(reason))
    for item in items:
        if _ours(item):
            item.add_marker(marker)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly or not any(_ours(i) for i in session.items):
        return
    if _unbuildable_reason() is not None:
        return
    capture = session.config.pluginmanager.getplugin("capturemanager")
    started = time.monotonic()
    with capture.global_and_fixture_disabled():
        try:
            _build["bin_dir"] = ensure_hydra(stream=True)
        except HydraUnavailable as err:
            _build["unavailable"] = str(err)
        except HydraError as err:
            _build["error"] = str(err)
    _build["seconds"] = time.monotonic() - started


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reason = _unbuildable_reason() or _build.get("unavailable")
    root = terminalreporter.config.rootpath
    skipped = terminalreporter.stats.get("skipped", [])
    if reason is not None and any(HERE in (root / r.nodeid.split("::")[0]).parents for r in skipped):
        terminalreporter.write_line(_skip_line(str(reason)), red=True, bold=True)
    elif "seconds" in _build:
        where = _build.get("bin_dir", "build failed")
        terminalreporter.write_line(f"hydra: Ory Hydra ready in {_build['seconds']:.1f}s ({where})")


@pytest.fixture(scope="session")
def hydra() -> Iterator[Hydra]:
    """One Hydra for the session: TLS on 127.0.0.1, memory DSN, JWT access tokens."""
    if "unavailable" in _build:
        pytest.skip(_skip_line(str(_build["unavailable"])))
    if "error" in _build:
        pytest.fail(f"could not build Ory Hydra: {_build['error']}")
    bin_dir = _build.get("bin_dir")
    with Hydra(Path(str(bin_dir)) if bin_dir else None) as idp:
        yield idp


@dataclass
class Tier:
    """The operator on the real API server trusting Hydra, and the machine clients a policy admits."""

    env: RealEnvironment
    plane: ControlPlane
    hydra: Hydra
    agent: MachineClient  # named in the tier's policy
    stranger: MachineClient  # a valid client of the same IdP that no policy names
    short_lived: MachineClient  # named in the policy; its tokens live 1 s
    # One of its tokens, minted at set-up: it passes the verifier's 30 s leeway while other tests run.
    expired_token: str
    policy: str

    @property
    def runtime_settings(self) -> OperatorSettings:
        runtime = self.env.operator.runtime
        assert runtime is not None
        return runtime.settings


@pytest.fixture(scope="module")
def tier(hydra: Hydra, real_env: RealEnvironment, control_plane: ControlPlane) -> Iterator[Tier]:
    """The shared operator restarted with the tier's key-cache settings, and examples/hydra's policy.
    (`hydra` first: where it cannot be built, the tests skip before a control plane starts.)

    Hydra's CA reaches the operator as an operator would give it: a Secret in the operator's namespace
    named by the policy's issuer entry (`caBundle`), added to the system roots for that issuer only.
    The operator is restarted with its usual settings at the end.
    """
    real_env.operator.stop()
    real_env.operator_settings = dict(KEY_CACHE_SETTINGS)
    ca_access = real_env.ca_bundle_secrets(CA_SECRET)  # the chart's identity.caBundleSecrets
    ca_access.__enter__()
    try:
        real_env.start_operator(timeout=60.0)
        CoreV1Api(real_env.admin).create_namespaced_secret(
            OPERATOR_NAMESPACE,
            {
                "metadata": {"name": CA_SECRET},
                "stringData": {"ca.crt": hydra.ca_path.read_text()},
            },
        )
        agent = hydra.create_client(audience=[AUDIENCE, "other-api"])
        short_lived = hydra.create_client(audience=[AUDIENCE], access_token_lifespan="1s")
        stranger = hydra.create_client(audience=[AUDIENCE])
        expired_token = hydra.token(short_lived, audience=AUDIENCE)
        # The worked example (examples/hydra/policy.yaml) as the docs tell an operator to apply it,
        # with this Hydra's issuer and client ids: the example is what the tests run.
        [policy_manifest] = load_manifests(EXAMPLES / "hydra" / "policy.yaml")
        [issuer_entry] = policy_manifest["spec"]["requesters"]["oidc"]
        assert policy_manifest["metadata"]["name"] == POLICY
        assert issuer_entry["caBundle"] == {"secret": CA_SECRET, "key": "ca.crt"}
        assert issuer_entry["audience"] == AUDIENCE
        issuer_entry["issuer"] = hydra.issuer
        issuer_entry["subjects"] = [agent.client_id, short_lived.client_id]
        real_env.apply([policy_manifest])
        policy = POLICY
        real_env.allow_to_request("agents", user="agent")
        # Ready means the operator fetched Hydra's discovery document through the caBundle and found
        # the issuer spelled as the policy spells it.
        wait_until(lambda: _ready(real_env, policy), timeout=30, what=f"GrantPolicy {policy} to be Ready")
        yield Tier(
            env=real_env,
            plane=control_plane,
            hydra=hydra,
            agent=agent,
            stranger=stranger,
            short_lived=short_lived,
            expired_token=expired_token,
            policy=policy,
        )
    finally:
        ca_access.__exit__(None, None, None)
        real_env.operator.stop()
        real_env.operator_settings = {}
        real_env.start_operator(timeout=60.0)
        # What this module added to the shared installation goes, so later modules start as before.
        custom, core = CustomObjectsApi(real_env.admin), CoreV1Api(real_env.admin)
        rbac = RbacAuthorizationV1Api(real_env.admin)
        for delete in (
            partial(custom.delete_cluster_custom_object, API_GROUP, API_VERSION, "grantpolicies", POLICY),
            partial(core.delete_namespaced_secret, CA_SECRET, OPERATOR_NAMESPACE),
            partial(rbac.delete_namespaced_role_binding, AGENT_BINDING, "agents"),
        ):
            try:
                delete()
            except ApiException as exc:
                if exc.status != 404:
                    raise


def _ready(env: RealEnvironment, policy: str) -> bool:
    found = CustomObjectsApi(env.admin).get_cluster_custom_object(
        API_GROUP, API_VERSION, "grantpolicies", policy
    )
    conditions = (found.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
