"""The console's OIDC sign-in with Ory Hydra against a real kube-apiserver whose own JWT authenticator
trusts Hydra (--authentication-config: issuer, CA, the audiences it accepts, username from the
verified email, groups). A control plane of its own (the shared one trusts no issuer), without the
operator: this is about who the API server says the person is. Chromium signs in through Hydra; the
real API server names the person; a console whose client id it does not accept as an audience cannot
sign in; a session ends with Hydra's 3-second ID token."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from aiohttp import web
from kubernetes.client import ApiClient, ApiextensionsV1Api, AuthorizationV1Api, Configuration
from kubernetes.utils import create_from_dict

from console.harness import RunningConsole, launch_browser
from jitgrant.client import Connection
from jitgrant.console.app import Console
from jitgrant.console.oidc import OidcLogin
from jitgrant.console.server import Server
from jitgrant.operator.runner import wait_until_served
from jitgrant_testing.controlplane import ControlPlane
from jitgrant_testing.environment import free_port, wait_until
from jitgrant_testing.hydra import Hydra, ensure_hydra
from jitgrant_testing.realenv import chart_crds

PERSON = {"email": "erin@example.com", "email_verified": True, "groups": ["sre-oncall"]}


@dataclass
class Setup:
    consoles: dict[str, RunningConsole] = field(default_factory=dict)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


def _authentication_config(hydra: Hydra, audiences: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AuthenticationConfiguration",
        "jwt": [
            {
                "issuer": {
                    "url": hydra.issuer,
                    "audiences": audiences,
                    "audienceMatchPolicy": "MatchAny",
                    "certificateAuthority": hydra.ca_path.read_text(),
                },
                "claimValidationRules": [
                    {"expression": "claims.email_verified == true", "message": "email not verified"}
                ],
                "claimMappings": {
                    "username": {"claim": "email", "prefix": ""},
                    "groups": {"claim": "groups", "prefix": ""},
                },
            }
        ],
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp("console-real-oidc")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="console-real-oidc", daemon=True)
    thread.start()
    hydra_ref: dict[str, Hydra] = {}

    async def login(request: web.Request) -> web.Response:
        target = await asyncio.to_thread(
            hydra_ref["h"].accept_login, request.query["login_challenge"], subject="uid-erin"
        )
        raise web.HTTPFound(target)

    async def consent(request: web.Request) -> web.Response:
        target = await asyncio.to_thread(
            hydra_ref["h"].accept_consent, request.query["consent_challenge"], id_token_claims=PERSON
        )
        raise web.HTTPFound(target)

    app = web.Application()
    app.router.add_get("/login", login)
    app.router.add_get("/consent", consent)
    runner = web.AppRunner(app, access_log=None)
    login_port = free_port()

    async def start_app() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", login_port).start()

    asyncio.run_coroutine_threadsafe(start_app(), loop).result(timeout=30)
    hydra = Hydra(ensure_hydra(stream=False), login_url=f"http://127.0.0.1:{login_port}")
    plane: ControlPlane | None = None
    started: list[RunningConsole] = []
    try:
        hydra.start()
        hydra_ref["h"] = hydra
        ports = {name: free_port() for name in ("approver", "unaccepted", "short")}
        clients = {
            name: hydra.create_code_client(
                redirect_uri=f"http://127.0.0.1:{port}/oidc/callback",
                id_token_lifespan="3s" if name == "short" else None,
            )
            for name, port in ports.items()
        }
        config = directory / "authentication.yaml"
        config.write_text(
            yaml.safe_dump(_authentication_config(hydra, [clients["approver"], clients["short"]]))
        )
        plane = ControlPlane(
            controller_manager=False, extra_apiserver_args=[f"--authentication-config={config}"]
        )
        plane.start()
        admin_config = Configuration(host=plane.server)
        admin_config.ssl_ca_cert = str(plane.ca_path)
        admin_config.api_key = {"authorization": f"Bearer {plane.token('admin')}"}
        with ApiClient(admin_config) as admin:
            for crd in chart_crds():
                create_from_dict(admin, crd)
            extensions = ApiextensionsV1Api(admin)
            wait_until(
                lambda: (
                    all(
                        any(
                            c.type == "Established" and c.status == "True"
                            for c in (crd.status.conditions or [])
                        )
                        for crd in extensions.list_custom_resource_definition().items
                    )
                    or None
                ),
                what="the CRDs to be established",
            )
            # Established is not served: lists answer 429 "storage is (re)initializing" until the API
            # server's cache of the new resources has loaded (the operator waits the same way).
            asyncio.run(wait_until_served(admin))
            for manifest in (
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": "console-reader"},
                    "rules": [
                        {
                            "apiGroups": ["jitgrant.dev"],
                            "resources": ["accessrequests", "grantpolicies"],
                            "verbs": ["get", "list", "watch"],
                        }
                    ],
                },
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": "console-reader-sre"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "console-reader",
                    },
                    "subjects": [
                        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "sre-oncall"}
                    ],
                },
            ):
                create_from_dict(admin, manifest)
            # RBAC reaches the authorizer's cache a moment after the binding is stored.
            authorization = AuthorizationV1Api(admin)
            wait_until(
                lambda: (
                    authorization.create_subject_access_review(
                        {
                            "spec": {
                                "user": "erin@example.com",
                                "groups": ["sre-oncall"],
                                "resourceAttributes": {
                                    "group": "jitgrant.dev",
                                    "resource": "grantpolicies",
                                    "verb": "list",
                                },
                            }
                        }
                    ).status.allowed
                    or None
                ),
                what="erin's binding to take effect",
            )
        server_only = Connection.from_kubeconfig(plane.kubeconfig_path("mallory", namespace="default"))
        result = Setup()
        for name, port in ports.items():
            base = f"http://127.0.0.1:{port}"
            login_flow = OidcLogin(
                issuer=hydra.issuer,
                client_id=clients[name],
                redirect_uri=f"{base}/oidc/callback",
                connect=lambda token: server_only.with_token(token, namespace="default"),
                ssl_context=ssl.create_default_context(cafile=str(hydra.ca_path)),
                secure_cookies=False,
            )
            server = Server(Console(login=login_flow, allowed_hosts=set()), port=port)
            asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=30)
            running = RunningConsole(base, f"{base}/oidc/login", server, loop, thread)
            started.append(running)
            result.consoles[name] = running
        yield result
    finally:
        for running in started:
            asyncio.run_coroutine_threadsafe(running._server.stop(), loop).result(timeout=30)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        if plane is not None:
            plane.stop()
        hydra.stop()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def sign_in(browser: Any, console: RunningConsole) -> Any:
    context = browser.new_context(viewport={"width": 360, "height": 900}, ignore_https_errors=True)
    page = context.new_page()
    page.goto(console.base + "/")
    page.get_by_role("link", name="Sign in").click()
    page.wait_for_url(console.base + "/**", timeout=30_000)
    page.wait_for_load_state()
    return page


def test_the_real_api_server_names_the_person_signed_in_through_hydra(setup: Setup, browser: Any) -> None:
    from playwright.sync_api import expect

    page = sign_in(browser, setup.consoles["approver"])
    assert page.locator("#me").inner_text() == "erin@example.com", page.content()
    assert "Nothing is waiting for you." in page.locator("main").inner_text()
    page.goto(setup.consoles["approver"].base + "/policies")
    # expect() waits for the page to settle (its live part is fetched again once the watch is up).
    expect(page.get_by_role("heading", name="Policies")).to_have_count(1)
    page.context.close()


def test_a_client_id_the_real_api_server_does_not_accept_cannot_sign_in(setup: Setup, browser: Any) -> None:
    page = sign_in(browser, setup.consoles["unaccepted"])
    text = page.locator("main").inner_text()
    assert "the Kubernetes API server did not accept your sign-in" in text, text
    page.context.close()


def test_the_session_ends_with_the_token_on_the_real_api_server(setup: Setup, browser: Any) -> None:
    console = setup.consoles["short"]
    page = sign_in(browser, console)
    assert page.locator("#me").inner_text() == "erin@example.com", page.content()

    def ended() -> bool | None:
        page.goto(console.base + "/mine")
        return "Your session ended" in page.locator("main").inner_text() or None

    wait_until(ended, timeout=20, what="the session to end with Hydra's 3-second ID token")
    page.context.close()
