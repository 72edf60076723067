"""The console's web security, tried as an attacker would, over plain HTTP: a spent or guessed login
link, a cross-site form, a form without this session's CSRF token, another Host name (DNS rebinding),
a path out of the static directory; and the headers on every answer."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import pytest

from hostile_text import ACTING, HOSTILE
from jitgrant.console.app import CONTENT_SECURITY_POLICY
from jitgrant.models.text import for_html
from jitgrant.models.vocabulary import APPROVALS_ANNOTATION

from .conftest import People, RunningConsole
from .test_console_browser import NS, file_request


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str


def call(
    console: RunningConsole,
    method: str,
    path: str,
    *,
    cookie: str = "",
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    where = urlsplit(console.base)
    connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=30)
    try:
        sent = {"Host": where.netloc, **(headers or {})}
        if cookie:
            sent["Cookie"] = cookie
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read().decode())
    finally:
        connection.close()


def sign_in(console: RunningConsole) -> str:
    answer = call(console, "GET", urlsplit(console.login_url).path + "?" + urlsplit(console.login_url).query)
    assert answer.status == 303, answer
    return answer.headers["Set-Cookie"].split(";")[0]


@pytest.fixture
def alice(console_for: Callable[..., RunningConsole]) -> Iterator[RunningConsole]:
    yield console_for("alice")


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_login_link_works_once_and_sets_an_httponly_samesite_cookie(alice: RunningConsole) -> None:
    login = urlsplit(alice.login_url)
    wrong = call(alice, "GET", f"{login.path}?token=guessed")
    assert wrong.status == 403 and "Set-Cookie" not in wrong.headers
    first = call(alice, "GET", f"{login.path}?{login.query}")
    assert first.status == 303 and first.headers["Location"] == "/"
    cookie = first.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie, cookie
    again = call(alice, "GET", f"{login.path}?{login.query}")
    assert again.status == 403 and "already used" in again.body
    assert call(alice, "GET", "/", cookie=cookie.split(";")[0]).status == 200


def test_every_answer_carries_the_security_headers(alice: RunningConsole) -> None:
    cookie = sign_in(alice)
    for method, path, signed_in, status in (
        ("GET", "/", True, 200),
        ("GET", "/", False, 401),
        ("GET", "/policies", True, 200),
        ("GET", "/requests/agents/no-such-request", True, 404),
        ("GET", "/static/console.js", False, 200),
        ("GET", "/static/..%2Fapp.py", False, 404),
        ("GET", "/nothing-here", True, 404),
        ("POST", "/requests/agents/x/approve", False, 401),
    ):
        answer = call(alice, method, path, cookie=cookie if signed_in else "")
        assert answer.status == status, (path, answer.status, answer.body[:300])
        assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
        assert answer.headers["X-Frame-Options"] == "DENY", path
        assert answer.headers["X-Content-Type-Options"] == "nosniff", path
        assert answer.headers["Cache-Control"] == "no-store", path
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY


def test_a_page_is_unreadable_without_a_session(alice: RunningConsole, people: People) -> None:
    file_request(people, "console-nosession")
    for path in ("/", "/mine", "/requests/agents/console-nosession", "/events"):
        answer = call(alice, "GET", path, cookie="jitgrant_console=forged-session-id")
        assert answer.status == 401, path
        assert "console-nosession" not in answer.body


def test_state_changes_need_this_sessions_csrf_token_and_this_origin(
    alice: RunningConsole, people: People
) -> None:
    file_request(people, "console-csrf")
    cookie = sign_in(alice)
    page = call(alice, "GET", "/requests/agents/console-csrf", cookie=cookie)
    token = csrf_of(page.body)
    path = "/requests/agents/console-csrf/approve"
    for form, headers, why in (
        ({"reason": "x"}, {}, "CSRF token is missing"),
        ({"reason": "x", "csrf": "not-the-token"}, {}, "CSRF token is missing or not this session"),
        ({"reason": "x", "csrf": token}, {"Origin": "https://evil.example"}, "came from another site"),
        ({"reason": "x", "csrf": token}, {"Origin": "null"}, "came from another site"),
    ):
        answer = call(alice, "POST", path, cookie=cookie, form=form, headers=headers)
        assert answer.status == 403 and why in answer.body, (form, headers, answer.body)
        annotations = people.env.get_request(NS, "console-csrf")["metadata"].get("annotations") or {}
        assert APPROVALS_ANNOTATION not in annotations
    # The same form with this session's token and this origin is accepted: the checks above refused
    # the forgery, not every form.
    origin = alice.base
    answer = call(
        alice, "POST", path, cookie=cookie, form={"reason": "ok", "csrf": token}, headers={"Origin": origin}
    )
    assert answer.status == 303, answer.body
    entries = json.loads(
        people.env.get_request(NS, "console-csrf")["metadata"]["annotations"][APPROVALS_ANNOTATION]
    )
    assert [entry["approver"] for entry in entries] == ["alice"]


def test_another_host_name_is_refused_even_with_a_session(alice: RunningConsole) -> None:
    """DNS rebinding: a page on evil.example that resolves to 127.0.0.1 sends Host: evil.example."""
    cookie = sign_in(alice)
    port = urlsplit(alice.base).port
    answer = call(alice, "GET", "/", cookie=cookie, headers={"Host": f"evil.example:{port}"})
    assert answer.status == 421 and "alice" not in answer.body
    assert call(alice, "GET", "/", cookie=cookie, headers={"Host": f"localhost:{port}"}).status == 200


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_for_html_leaves_no_markup_and_no_acting_character(name: str) -> None:
    shown = for_html(HOSTILE[name])
    assert not set("<>\"'") & set(shown), shown
    assert not [char for char in ACTING if char in shown], shown


def test_policies_page_says_who_may_request_what_and_who_approves(alice: RunningConsole) -> None:
    cookie = sign_in(alice)
    page = call(alice, "GET", "/policies", cookie=cookie).body
    section = page.split('<section class="policy" id="prod-restart">')[1].split("</section>")[0]
    assert "jit-restart-checkout" in section and "payments" in section and "15m" in section, section
    assert "<dt>Approvals needed</dt><dd>1</dd>" in section
    assert "users none; groups sre-oncall" in section
    assert "oncall-agent" in section


def test_sign_out_needs_the_csrf_token_and_ends_the_session(alice: RunningConsole) -> None:
    cookie = sign_in(alice)
    token = csrf_of(call(alice, "GET", "/", cookie=cookie).body)
    forged = call(alice, "POST", "/logout", cookie=cookie, form={})
    assert forged.status == 403 and call(alice, "GET", "/", cookie=cookie).status == 200
    out = call(alice, "POST", "/logout", cookie=cookie, form={"csrf": token})
    assert out.status == 200 and "jitgrant_console=" in out.headers["Set-Cookie"]
    assert call(alice, "GET", "/", cookie=cookie).status == 401
