"""The console's web server (aiohttp): sessions, CSRF, security headers, pages, actions, live updates.

One code path for both ways to run it; only how a person signs in differs (`Login`): locally with a
one-time token printed for the person who started it (their kubeconfig), in the cluster with OIDC
(their ID token). Each session owns a `UserApi` on the person's own credentials; nothing here has
credentials of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import web

from jitgrant.activity.base import AuditSource, SourceError
from jitgrant.activity.grant import NoGrant, identity_of
from jitgrant.activity.report import Activity, read
from jitgrant.client.errors import ApiRefused, ApiUnreachable, JitgrantError
from jitgrant.console import render
from jitgrant.console.api import UserApi
from jitgrant.console.views import LIVE_PHASES, approvers_named, decision, is_mine, recorded
from jitgrant.models import AccessRequest
from jitgrant.models.text import MAX_REASON_LENGTH
from jitgrant.models.vocabulary import APPROVE_ANNOTATION, DENY_ANNOTATION, REVOKE_ANNOTATION

COOKIE = "jitgrant_console"
# No script but our own file, no inline code, no framing, forms only to ourselves.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # The local login link carries a token: never send our URLs to another site. (Not no-referrer:
    # with it a browser sends `Origin: null` on our own forms, and the CSRF check needs the origin.)
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
STATIC = {"console.js": "text/javascript", "console.css": "text/css"}
ACTIONS = {"approve": APPROVE_ANNOTATION, "deny": DENY_ANNOTATION, "revoke": REVOKE_ANNOTATION}
DONE = {
    "approve": "Your approval was recorded by the admission webhook.",
    "deny": "Your denial was recorded by the admission webhook.",
    "revoke": "Revocation requested: the operator removes the grant now.",
}


@dataclass
class Session:
    api: UserApi
    expires_at: float  # wall-clock seconds; the OIDC token's exp, or the local session's end
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))


class Login(Protocol):
    """How a person signs in; adds its routes and makes sessions."""

    def routes(self, console: Console) -> list[web.RouteDef]: ...

    def sign_in_hint(self) -> str: ...

    @property
    def sign_in_link(self) -> str | None: ...


@dataclass
class Console:
    login: Login
    # The Host header values the console answers to (DNS rebinding: a page on another name that
    # resolves to 127.0.0.1 must not reach it).
    allowed_hosts: set[str]
    secure_cookies: bool = False
    activity_source: AuditSource | None = None
    sessions: dict[str, Session] = field(default_factory=dict)
    # Sessions that ended with their token, to tell the person why they are asked to sign in again.
    ended: set[str] = field(default_factory=set)

    # -- sessions -----------------------------------------------------------------------------
    def start_session(self, response: web.StreamResponse, api: UserApi, *, expires_at: float) -> Session:
        sid = secrets.token_urlsafe(32)
        session = Session(api=api, expires_at=expires_at)
        self.sessions[sid] = session
        response.set_cookie(
            COOKIE,
            sid,
            httponly=True,
            samesite="Lax",  # Lax, not Strict: the OIDC callback arrives by a cross-site redirect
            secure=self.secure_cookies,
            path="/",
        )
        return session

    async def end_session(
        self, request: web.Request, response: web.StreamResponse | None, *, expired: bool = False
    ) -> None:
        sid = request.cookies.get(COOKIE, "")
        session = self.sessions.pop(sid, None)
        if session is not None:
            await session.api.close()
        if expired:
            # The cookie stays (it opens nothing now), so every page asked for after this one,
            # by the person or by the live update, says why they must sign in again.
            self.ended.add(sid)
        elif response is not None:
            response.del_cookie(COOKIE, path="/")

    async def session_of(self, request: web.Request) -> Session | None:
        sid = request.cookies.get(COOKIE, "")
        session = self.sessions.get(sid) if sid else None
        if session is None:
            return None
        if time.time() >= session.expires_at:
            # The session ends when the token it acts with does.
            del self.sessions[sid]
            self.ended.add(sid)
            await session.api.close()
            return None
        return session

    async def close(self) -> None:
        for session in self.sessions.values():
            await session.api.close()
        self.sessions.clear()

    # -- the application -------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.add_routes(
            [
                web.get("/healthz", _healthz),
                web.get("/favicon.ico", _no_icon),
                web.get("/static/{file}", _static),
                web.post("/logout", self._logout),
                web.get("/", self._page(self._waiting)),
                web.get("/mine", self._page(self._mine)),
                web.get("/policies", self._page(self._policies)),
                web.get("/requests/{namespace}/{name}", self._page(self._request)),
                web.post("/requests/{namespace}/{name}/{action}", self._act),
                web.get("/events", self._events),
                *self.login.routes(self),
            ]
        )
        app.on_cleanup.append(lambda _: self.close())
        return app

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # Probes reach the pod by its IP: only the health check answers on any name.
        if request.host not in self.allowed_hosts and request.path != "/healthz":
            response: web.StreamResponse = _html(
                render.bare("Wrong address", "This console answers only on the address it printed."), 421
            )
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                if exc.status >= 400:
                    response = _html(render.bare(exc.reason, exc.text or exc.reason), exc.status)
                else:
                    response = web.Response(status=exc.status, headers=exc.headers)
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    def _unauthenticated(self, request: web.Request) -> web.Response:
        hint = self.login.sign_in_hint()
        if request.cookies.get(COOKIE, "") in self.ended:
            hint = f"Your session ended when your sign-in expired or was no longer accepted. {hint}"
        link = self.login.sign_in_link
        return _html(render.bare("Sign in", hint, link=(link, "Sign in") if link else None), 401)

    def _page(
        self, view: Callable[[web.Request, Session, str], Awaitable[tuple[str, str, int]]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            session = await self.session_of(request)
            if session is None:
                return self._unauthenticated(request)
            username = ""
            try:
                username = (await session.api.whoami()).username
                title, body, status = await view(request, session, username)
            except ApiRefused as exc:
                if exc.status == 401:
                    # The API server no longer accepts the token (expired a moment before our clock
                    # said so, or revoked): the session ends as when its token expires.
                    await self.end_session(request, None, expired=True)
                    return self._unauthenticated(request)
                title, body, status = "Refused", f'<p class="error">{render.t(exc.message)}</p>', exc.status
            except ApiUnreachable as exc:
                title, body, status = "API server unreachable", f"<p>{render.t(exc.message)}</p>", 502
            done = request.query.get("done", "")
            return _html(
                render.page(
                    title,
                    body,
                    username=username,
                    csrf=session.csrf,
                    current=request.path,
                    notice=DONE.get(done, ""),
                ),
                status,
            )

        return handler

    # -- views --------------------------------------------------------------------------------
    async def _policies_of(
        self, api: UserApi, items: list[dict[str, Any]]
    ) -> dict[str, dict[str, Any] | None]:
        names = sorted({str((obj.get("spec") or {}).get("policy")) for obj in items})
        found = await asyncio.gather(*(api.policy(name) for name in names))
        return dict(zip(names, found, strict=True))

    async def _waiting(self, request: web.Request, session: Session, username: str) -> tuple[str, str, int]:
        me = await session.api.whoami()
        listing = await session.api.requests()
        pending = [obj for obj in listing.items if (obj.get("status") or {}).get("phase") == "Pending"]
        policies = await self._policies_of(session.api, pending)
        rows = []
        for obj in pending:
            policy = policies[str((obj.get("spec") or {}).get("policy"))]
            verdict = decision(obj, policy, username=me.username, groups=me.groups)
            if verdict.may_decide and verdict.needed is not None:
                more = verdict.needed - verdict.counted
                note = f"{verdict.counted} of {verdict.needed}; {more} more from {approvers_named(policy)}"
                rows.append((obj, note))
        body = (
            f'<p class="scope">Pending requests you may decide on, read from {render.t(listing.scope)}.</p>'
        )
        body += render.request_table(rows, empty="Nothing is waiting for you.")
        return "Waiting for me", body, 200

    async def _mine(self, request: web.Request, session: Session, username: str) -> tuple[str, str, int]:
        listing = await session.api.requests()
        rows = [
            (obj, str((obj.get("status") or {}).get("reason") or ""))
            for obj in listing.items
            if is_mine(obj, username)
        ]
        return "My requests", render.request_table(rows, empty="You have filed no requests."), 200

    async def _policies(self, request: web.Request, session: Session, username: str) -> tuple[str, str, int]:
        return "Policies", render.policies_page(await session.api.policies()), 200

    async def _request(
        self, request: web.Request, session: Session, username: str, *, error: str = ""
    ) -> tuple[str, str, int]:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        try:
            obj = await session.api.request(namespace, name)
        except ApiRefused as exc:
            if exc.status == 404:
                return "Not found", f"<p>No AccessRequest {render.t(namespace)}/{render.t(name)}.</p>", 404
            raise
        me = await session.api.whoami()
        spec = obj.get("spec") or {}
        policy = await session.api.policy(str(spec.get("policy")))
        rules, rules_note = await self._rules(session.api, spec)
        body = render.request_page(
            obj,
            policy=policy,
            rules=rules,
            decision=decision(obj, policy, username=me.username, groups=me.groups),
            mine=is_mine(obj, me.username),
            csrf=session.csrf,
            activity=await self._activity(obj),
        )
        if rules_note:
            body += f'<p class="note">{render.t(rules_note)}</p>'
        return f"AccessRequest {namespace}/{name}", body, 200

    async def _rules(self, api: UserApi, spec: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str]:
        if not spec.get("clusterRole"):
            return list(spec.get("rules") or []), ""
        role = str(spec["clusterRole"])
        try:
            body = (
                await api.connection.call("GET", f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{role}")
            ).body
        except ApiRefused as exc:
            return [], f"The ClusterRole {role} could not be read with your access: {exc.message}"
        return list(body.get("rules") or []), ""

    async def _activity(self, obj: Mapping[str, Any]) -> str:
        if self.activity_source is None:
            return '<p class="empty">Start the console with --audit-log to see what grants were used for.</p>'
        try:
            request = AccessRequest.from_object(dict(obj))
            grant = identity_of(request)
        except NoGrant as exc:
            return f'<p class="empty">{render.t(exc)}</p>'
        except ValueError as exc:
            return f'<p class="empty">The request could not be read: {render.t(exc)}</p>'
        try:
            calls = await asyncio.to_thread(read, self.activity_source, grant)
        except SourceError as exc:
            return f'<p class="empty">{render.t(exc)}</p>'
        report = Activity.of(request, grant, self.activity_source.name, calls)
        return render.activity_list(
            [
                {
                    "at": call.time.isoformat(),
                    "verb": call.verb,
                    "what": "/".join(p for p in (call.resource, call.namespace or "", call.name or "") if p),
                    "decision": f"{call.code or ''} {call.outcome.value}",
                }
                for call in report.calls
            ]
        )

    # -- actions ------------------------------------------------------------------------------
    async def _checked_form(self, request: web.Request, session: Session) -> Mapping[str, str]:
        """The form of a state change, after the CSRF checks: the Origin (when the browser sends
        one) is this console, and the token is this session's."""
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(reason="Forbidden", text="Refused: the form came from another site.")
        form = await request.post()
        token = form.get("csrf")
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), session.csrf.encode()):
            raise web.HTTPForbidden(
                reason="Forbidden", text="Refused: the form's CSRF token is missing or not this session's."
            )
        return {key: value for key, value in form.items() if isinstance(value, str)}

    async def _act(self, request: web.Request) -> web.StreamResponse:
        session = await self.session_of(request)
        if session is None:
            return self._unauthenticated(request)
        form = await self._checked_form(request, session)
        namespace, name, action = (request.match_info[key] for key in ("namespace", "name", "action"))
        if action not in ACTIONS:
            raise web.HTTPNotFound(reason="Not Found", text=f"No action {action!r}: approve, deny or revoke.")
        reason = form.get("reason", "").strip()
        problem = ""
        if action in ("deny", "revoke") and not reason:
            problem = f"A {action} needs a reason (it goes to the requester and the audit trail)."
        elif len(reason) > MAX_REASON_LENGTH:
            problem = f"The reason is {len(reason)} characters; at most {MAX_REASON_LENGTH} are accepted."
        if not problem:
            problem = await self._annotate(session, namespace, name, action, reason)
        if not problem:
            raise web.HTTPSeeOther(f"{render.href('requests', namespace, name)}?done={action}")
        me = await session.api.whoami()
        try:
            title, body, _ = await self._request(request, session, me.username)
        except JitgrantError as exc:
            title, body = "Refused", f"<p>{render.t(exc.message)}</p>"
        return _html(render.page(title, body, username=me.username, csrf=session.csrf, error=problem), 403)

    async def _annotate(self, session: Session, namespace: str, name: str, action: str, reason: str) -> str:
        """The CLI's approve/deny/revoke; '' when done, else why not (the webhook's own words)."""
        try:
            if action == "revoke":
                current = await session.api.request(namespace, name)
                phase = (current.get("status") or {}).get("phase")
                if phase not in LIVE_PHASES:
                    return f"The request has already ended ({phase}); nothing to revoke."
            result = await session.api.annotate(namespace, name, {ACTIONS[action]: reason})
        except ApiRefused as exc:
            return exc.message
        except ApiUnreachable as exc:
            return exc.message
        if action == "revoke":
            return ""
        annotations = (result.get("metadata") or {}).get("annotations") or {}
        me = await session.api.whoami()
        if ACTIONS[action] in annotations or not any(e.approver == me.username for e in recorded(result)):
            return (
                f"The {action} was not recorded: the jitgrant admission webhook did not handle it; check "
                "that the operator and its webhook configurations are installed."
            )
        return ""

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        session = await self.session_of(request)
        response = _html(render.bare("Signed out", "You are signed out."), 200)
        if session is not None:
            await self._checked_form(request, session)
            await self.end_session(request, response)
        return response

    # -- live updates -------------------------------------------------------------------------
    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events from a watch on the AccessRequests the person can list: one `change`
        event per change, naming the request; the page's script fetches itself again."""
        session = await self.session_of(request)
        if session is None:
            return self._unauthenticated(request)
        response = web.StreamResponse(headers={**SECURITY_HEADERS, "Content-Type": "text/event-stream"})
        await response.prepare(request)
        # The page went away (the server also cancels this handler when it does).
        with contextlib.suppress(ConnectionResetError):
            await self._stream(session, response)
        return response

    async def _stream(self, session: Session, response: web.StreamResponse) -> None:
        await response.write(b": watching\n\n")
        while time.time() < session.expires_at:
            try:
                listing = await session.api.requests()
                # Changes before this list are on the page once it fetches itself again; the
                # watch from the list's version brings every one after it.
                await response.write(b'event: ready\ndata: "watching"\n\n')
                async for event in session.api.watch_requests(listing):
                    if time.time() >= session.expires_at:
                        break
                    kind = event.get("type")
                    if kind == "ERROR":
                        break
                    if kind == "BOOKMARK":
                        continue
                    meta = (event.get("object") or {}).get("metadata") or {}
                    data = json.dumps(f"{meta.get('namespace')}/{meta.get('name')}")
                    await response.write(f"event: change\ndata: {data}\n\n".encode())
            except ApiUnreachable:
                await asyncio.sleep(1.0)
            except ApiRefused:
                break
        await response.write(b'event: ended\ndata: "session ended"\n\n')


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def _static(request: web.Request) -> web.Response:
    name = request.match_info["file"]
    if name not in STATIC:
        raise web.HTTPNotFound(reason="Not Found", text="No such file.")
    body = files("jitgrant.console").joinpath("static", name).read_bytes()
    return web.Response(body=body, content_type=STATIC[name])


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
