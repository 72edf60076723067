"""The console's OIDC sign-in against Ory Hydra v2.3.0 (built by tests/hydra/build.sh, as for
tests/realapi/hydra): authorization code + PKCE with a public client, Hydra's login and consent
answered by a small app here through Hydra's admin API, and the embedded API server trusting Hydra's
ID tokens for the audiences it is told (kube-apiserver's JWT authenticator, as a token plugin: the
shared real kube-apiserver of tests/realapi is not configured with an issuer). Tried in Chromium:
sign in and approve; a console whose client id the API server does not accept as an audience; a
session that ends with Hydra's 3-second ID token. Where Hydra cannot be built (no Go toolchain), the
tests print one loud line and skip, as tests/realapi/hydra does."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web

from embedkube import User
from jitgrant.client import Connection
from jitgrant.console.app import Console
from jitgrant.console.oidc import OidcLogin
from jitgrant.console.server import Server
from jitgrant.models.vocabulary import APPROVALS_ANNOTATION
from jitgrant_testing.environment import free_port, wait_until
from jitgrant_testing.hydra import Hydra, HydraUnavailable, ensure_hydra

from .conftest import People
from .harness import RunningConsole, shot
from .test_console_browser import NS, file_request

PERSON = {"email": "erin@example.com", "groups": ["sre-oncall"]}


@dataclass
class Setup:
    hydra: Hydra
    consoles: dict[str, RunningConsole] = field(default_factory=dict)


@pytest.fixture(scope="module")
def hydra_bin() -> Path:
    try:
        return ensure_hydra(stream=False)
    except HydraUnavailable as exc:
        line = f"!!! tests/console Hydra sign-in SKIPPED: Ory Hydra cannot be built here ({exc}) !!!"
        print("\n" + line)
        pytest.skip(line)


def _login_app(hydra_ref: dict[str, Hydra]) -> web.Application:
    """Hydra's login and consent: the person is erin, in group sre-oncall (the IdP's own login page
    would establish that); answered through Hydra's admin API."""

    async def login(request: web.Request) -> web.Response:
        challenge = request.query["login_challenge"]
        target = await asyncio.to_thread(hydra_ref["hydra"].accept_login, challenge, subject="uid-erin")
        raise web.HTTPFound(target)

    async def consent(request: web.Request) -> web.Response:
        challenge = request.query["consent_challenge"]
        target = await asyncio.to_thread(hydra_ref["hydra"].accept_consent, challenge, id_token_claims=PERSON)
        raise web.HTTPFound(target)

    app = web.Application()
    app.router.add_get("/login", login)
    app.router.add_get("/consent", consent)
    return app


@pytest.fixture(scope="module")
def setup(people: People, hydra_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="console-hydra", daemon=True)
    thread.start()
    hydra_ref: dict[str, Hydra] = {}
    runner = web.AppRunner(_login_app(hydra_ref), access_log=None)
    login_port = free_port()

    async def start_login_app() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", login_port).start()

    asyncio.run_coroutine_threadsafe(start_login_app(), loop).result(timeout=30)
    hydra = Hydra(hydra_bin, login_url=f"http://127.0.0.1:{login_port}")
    hydra.start()
    hydra_ref["hydra"] = hydra
    started: list[RunningConsole] = []
    try:
        ports = {name: free_port() for name in ("approver", "unaccepted", "short")}
        clients = {
            name: hydra.create_code_client(
                redirect_uri=f"http://127.0.0.1:{port}/oidc/callback",
                id_token_lifespan="3s" if name == "short" else None,
            )
            for name, port in ports.items()
        }
        # The API server accepts Hydra's ID tokens for two of the three clients' audiences.
        accepted = {clients["approver"], clients["short"]}

        async def authenticate(token: str) -> User | None:
            try:
                header = jwt.get_unverified_header(token)
                keys = await asyncio.to_thread(hydra.published_keys)
                jwk = next((k for k in keys if k.get("kid") == header.get("kid")), None)
                if jwk is None:
                    return None
                claims = jwt.decode(
                    token,
                    jwt.PyJWK(jwk).key,
                    algorithms=["RS256"],
                    audience=list(accepted),
                    issuer=hydra.issuer,
                )
            except jwt.PyJWTError:
                return None
            if "email" not in claims:
                return None
            return User(
                name=str(claims["email"]), uid=str(claims["sub"]), groups=tuple(claims.get("groups") or ())
            )

        people.env.cluster.authn.add_plugin(authenticate)
        directory = tmp_path_factory.mktemp("hydra-console")
        nobody = people.env.cluster.add_user(User(name="nobody-hydra", uid="uid-nobody-hydra"))
        kubeconfig = directory / "server.kubeconfig"
        people.env.cluster.write_kubeconfig(kubeconfig, token=nobody, namespace=NS)
        server_only = Connection.from_kubeconfig(kubeconfig)
        result = Setup(hydra=hydra)
        for name, port in ports.items():
            base = f"http://127.0.0.1:{port}"
            login = OidcLogin(
                issuer=hydra.issuer,
                client_id=clients[name],
                redirect_uri=f"{base}/oidc/callback",
                connect=lambda token: server_only.with_token(token, namespace=NS),
                ssl_context=ssl.create_default_context(cafile=str(hydra.ca_path)),
                secure_cookies=False,
            )
            server = Server(Console(login=login, allowed_hosts=set()), port=port)
            asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=30)
            running = RunningConsole(base, f"{base}/oidc/login", server, loop, thread)
            started.append(running)
            result.consoles[name] = running
        yield result
    finally:
        for running in started:
            asyncio.run_coroutine_threadsafe(running._server.stop(), loop).result(timeout=30)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
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


def test_sign_in_with_hydra_and_approve(
    people: People, setup: Setup, browser: Any, screenshots: Path
) -> None:
    file_request(people, "console-hydra")
    page = sign_in(browser, setup.consoles["approver"])
    assert page.locator("#me").inner_text() == "erin@example.com", page.content()
    page.get_by_role("link", name=f"{NS}/console-hydra").click()
    page.fill("#approve-reason", "INC-4712 checked, signed in with Hydra")
    page.click("#approve")
    page.wait_for_load_state()
    assert "Your approval was recorded" in page.get_by_role("status").inner_text()
    [entry] = json.loads(
        people.env.get_request(NS, "console-hydra")["metadata"]["annotations"][APPROVALS_ANNOTATION]
    )
    assert (entry["approver"], entry["groups"][0]) == ("erin@example.com", "sre-oncall")
    people.env.wait_for_phase(NS, "console-hydra", "Active", timeout=30)
    shot(page, screenshots, "hydra-approved")
    page.context.close()


def test_a_client_the_api_server_does_not_accept_as_audience_cannot_sign_in(
    setup: Setup, browser: Any
) -> None:
    page = sign_in(browser, setup.consoles["unaccepted"])
    text = page.locator("main").inner_text()
    assert "the Kubernetes API server did not accept your sign-in" in text, text
    assert "jitgrant_console" not in {c["name"] for c in page.context.cookies()}
    page.context.close()


def test_the_session_ends_with_hydras_id_token(setup: Setup, browser: Any) -> None:
    console = setup.consoles["short"]
    page = sign_in(browser, console)
    assert page.locator("#me").inner_text() == "erin@example.com", page.content()

    shown: dict[str, str] = {}

    def ended() -> bool | None:
        page.goto(console.base + "/mine")
        shown["text"] = page.locator("main").inner_text()
        return "Your session ended when your sign-in expired" in shown["text"] or None

    try:
        wait_until(ended, timeout=20, what="the session to end with Hydra's 3-second ID token")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the page shows: {shown}") from None
    page.context.close()
