"""In-cluster sign-in, on the embedded cluster: OIDC authorization code + PKCE against the test
issuer (jitgrant_testing.oidc, with its authorization and token endpoints), the API server trusting
that issuer's ID tokens for the console's client (as kube-apiserver's JWT authenticator would), and
every call made with the signed-in person's token. Tried in Chromium: a sign-in and an approval, a
token for another audience, a session that ends with its token."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from embedkube import User
from jitgrant.client import Connection
from jitgrant.console.app import Console
from jitgrant.console.oidc import OidcLogin
from jitgrant.console.server import Server
from jitgrant.models.vocabulary import APPROVALS_ANNOTATION
from jitgrant_testing.environment import free_port, wait_until
from jitgrant_testing.oidc import OIDCIssuer

from .conftest import People
from .harness import RunningConsole, shot
from .test_console_browser import NS, file_request

CLIENT = "jitgrant-console"


def trust_issuer(people: People, issuer: OIDCIssuer) -> None:
    """The API server's JWT authenticator for the issuer: signature, issuer, audience (the console's
    client id), expiry; username from `email`, groups from `groups`."""

    async def authenticate(token: str) -> User | None:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            if kid not in issuer.keys:
                return None
            claims = jwt.decode(
                token,
                issuer.keys[kid].public_key(),
                algorithms=["RS256", "ES256"],
                audience=CLIENT,
                issuer=issuer.url,
            )
        except jwt.PyJWTError:
            return None
        return User(
            name=str(claims["email"]), uid=str(claims["sub"]), groups=tuple(claims.get("groups") or ())
        )

    people.env.cluster.authn.add_plugin(authenticate)


@pytest.fixture
def oidc_console(people: People, tmp_path: Path) -> Iterator[tuple[RunningConsole, OIDCIssuer]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="console-oidc", daemon=True)
    thread.start()
    issuer = OIDCIssuer(directory=tmp_path)
    asyncio.run_coroutine_threadsafe(issuer.start(), loop).result(timeout=30)
    trust_issuer(people, issuer)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    issuer.clients[CLIENT] = f"{base}/oidc/callback"
    # Where the API server is and its CA: the kubeconfig of someone with no rights; with_token drops
    # its credentials, so only the signed-in person's token is ever sent.
    nobody = people.env.cluster.add_user(User(name="nobody", uid="uid-nobody"))
    kubeconfig = tmp_path / "server.kubeconfig"
    people.env.cluster.write_kubeconfig(kubeconfig, token=nobody, namespace=NS)
    server_only = Connection.from_kubeconfig(kubeconfig)
    login = OidcLogin(
        issuer=issuer.url,
        client_id=CLIENT,
        redirect_uri=f"{base}/oidc/callback",
        connect=lambda token: server_only.with_token(token, namespace=NS),
        ssl_context=ssl.create_default_context(cafile=str(issuer.tls.cafile)),
        secure_cookies=False,
    )
    server = Server(Console(login=login, allowed_hosts=set()), port=port)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=30)
    running = RunningConsole(base, f"{base}/oidc/login", server, loop, thread)
    try:
        yield running, issuer
    finally:
        asyncio.run_coroutine_threadsafe(issuer.stop(), loop).result(timeout=30)
        running.stop()


def sign_in(browser: Any, console: RunningConsole) -> Any:
    # The test issuer's certificate is its own CA's: the browser is told to accept it; the console
    # verifies it against that CA.
    context = browser.new_context(viewport={"width": 360, "height": 900}, ignore_https_errors=True)
    page = context.new_page()
    page.goto(console.base + "/")
    page.get_by_role("link", name="Sign in").click()
    page.wait_for_load_state()
    return page


def test_sign_in_with_oidc_and_approve_as_that_person(
    people: People, oidc_console: tuple[RunningConsole, OIDCIssuer], browser: Any, screenshots: Path
) -> None:
    console, issuer = oidc_console
    issuer.signed_in = {"sub": "uid-dana", "email": "dana@example.com", "groups": ["sre-oncall"]}
    file_request(people, "console-oidc")
    page = sign_in(browser, console)
    assert page.url == console.base + "/", page.content()
    assert page.locator("#me").inner_text() == "dana@example.com"
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["jitgrant_console"]["httpOnly"] and cookies["jitgrant_console"]["sameSite"] == "Lax"
    assert "jitgrant_console_oidc" not in cookies  # the sign-in's state is spent
    assert page.evaluate("document.cookie") == ""  # nothing readable by script, no token in the page
    assert page.evaluate("Object.keys(localStorage).length + Object.keys(sessionStorage).length") == 0
    page.get_by_role("link", name=f"{NS}/console-oidc").click()
    page.fill("#approve-reason", "INC-4712 checked via OIDC")
    page.click("#approve")
    page.wait_for_load_state()
    assert "Your approval was recorded" in page.get_by_role("status").inner_text()
    annotations = people.env.get_request(NS, "console-oidc")["metadata"]["annotations"]
    [entry] = json.loads(annotations[APPROVALS_ANNOTATION])
    assert (entry["approver"], entry["groups"][0]) == ("dana@example.com", "sre-oncall")
    people.env.wait_for_phase(NS, "console-oidc", "Active", timeout=30)
    shot(page, screenshots, "oidc-approved")
    page.context.close()


def test_a_token_for_another_audience_is_refused(
    people: People, oidc_console: tuple[RunningConsole, OIDCIssuer], browser: Any
) -> None:
    console, issuer = oidc_console
    issuer.signed_in = {"sub": "uid-dana", "email": "dana@example.com", "groups": ["sre-oncall"]}
    issuer.id_token_overrides = {"aud": "another-app"}
    page = sign_in(browser, console)
    text = page.locator("main").inner_text()
    assert "the ID token is for audience 'another-app', not this console ('jitgrant-console')" in text, text
    page.goto(console.base + "/")
    assert page.get_by_role("heading", name="Sign in").count() == 1
    assert "jitgrant_console" not in {c["name"] for c in page.context.cookies()}
    page.context.close()


def test_the_session_ends_when_the_token_does(
    people: People, oidc_console: tuple[RunningConsole, OIDCIssuer], browser: Any
) -> None:
    console, issuer = oidc_console
    issuer.signed_in = {"sub": "uid-dana", "email": "dana@example.com", "groups": ["sre-oncall"]}
    issuer.id_token_overrides = {"lifetime": 3}
    page = sign_in(browser, console)
    assert page.locator("#me").inner_text() == "dana@example.com"
    shown: dict[str, str] = {}

    def ended() -> bool | None:
        page.goto(console.base + "/policies")
        shown["text"] = page.locator("main").inner_text()
        return "Your session ended when your sign-in expired" in shown["text"] or None

    wait_until(ended, timeout=20, what="the session to end with its 3-second token")
    assert page.get_by_role("link", name="Sign in").count() == 1, shown
    page.context.close()
