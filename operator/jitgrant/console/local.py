"""Local sign-in: the console on 127.0.0.1 acts with the kubeconfig of the person who started it.

Like a notebook server, it prints a link with a one-time token: whoever opens it first gets the
session, and the link is spent. Other local users and web pages cannot reach the session: the token
is in no cookie and no page, the cookie is HttpOnly, and the Host check refuses other names.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from jitgrant.client import Connection
from jitgrant.console import render
from jitgrant.console.api import UserApi

if TYPE_CHECKING:
    from jitgrant.console.app import Console

LOCAL_SESSION_SECONDS = 8 * 3600


@dataclass
class LocalLogin:
    connect: Callable[[], Connection]
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    used: bool = False

    def routes(self, console: Console) -> list[web.RouteDef]:
        async def login(request: web.Request) -> web.StreamResponse:
            given = request.query.get("token", "")
            if self.used or not hmac.compare_digest(given.encode(), self.token.encode()):
                return web.Response(
                    text=render.bare(
                        "Sign-in link not valid",
                        "This sign-in link is not valid or was already used: start `jitgrant console` "
                        "again for a new one.",
                    ),
                    status=403,
                    content_type="text/html",
                )
            self.used = True
            response = web.Response(status=303, headers={"Location": "/"})
            console.start_session(
                response, UserApi(self.connect()), expires_at=time.time() + LOCAL_SESSION_SECONDS
            )
            return response

        return [web.get("/login", login)]

    sign_in_link = None

    def sign_in_hint(self) -> str:
        return (
            "Open the sign-in link `jitgrant console` printed in its terminal (it works once); to sign "
            "in again, start the console again."
        )
