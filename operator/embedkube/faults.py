"""Faults on demand: make the embedded API server fail one user's requests, or drop its watches.

For the chaos suite (tests/chaos): the cluster runs in the test process, so the test turns faults on
and off while the operator (another process) talks to the server. Off by default, and then the
middleware only passes requests through.

* `fail(...)`: answer a fraction of the user's matching requests, or the next N, with 409 Conflict,
  429 Too Many Requests (with Retry-After), 500 or 503, as kube-apiserver words them. The request is
  refused before it reaches storage, so nothing it asked for happened.
* `drop_watches(every=...)`: end each of the user's watch streams that many seconds after it opened
  (or after now, for those already open) by closing its connection, as a load balancer or a
  restarting API server would; `cut_watches()` ends the open ones now.

Who is asking is read from the bearer token with the server's own authenticator (cached per token),
because the server itself learns the user only inside its handler.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass

from aiohttp import web

from .authn import User
from .server import parse_request
from .watch import flag

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Authenticate = Callable[[str], Awaitable[User | None]]

WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})

_REASONS: Mapping[int, tuple[str, str]] = {
    409: (
        "Conflict",
        "the object has been modified; please apply your changes to the latest version and try again",
    ),
    429: ("TooManyRequests", "too many requests, please try again later"),
    500: ("InternalError", "an error on the server (injected) has prevented the request from succeeding"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
}


@dataclass
class _Rule:
    user: str
    statuses: tuple[int, ...]
    fraction: float
    remaining: int | None  # the next N matching requests; None: a fraction of all of them
    verbs: frozenset[str] | None
    resources: frozenset[str] | None
    retry_after: int


class FaultInjector:
    """An aiohttp middleware whose faults are set at run time, from any thread."""

    def __init__(self, authenticate: Authenticate, *, seed: int | None = None) -> None:
        self._authenticate = authenticate
        self._random = random.Random(seed)  # noqa: S311 - which requests fail, not a secret
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._watch_user: str | None = None
        self._watch_every: float | None = None
        #: Open watches: id(request) -> (request, its loop, username).
        self._watches: dict[int, tuple[web.Request, asyncio.AbstractEventLoop, str]] = {}
        self._users: dict[str, str | None] = {}  # token -> username
        #: What was done: injected statuses by code, and "watch-cut".
        self.injected: Counter[str] = Counter()

    # ---- the test's side ---------------------------------------------------------------------------

    def fail(
        self,
        *,
        user: str,
        status: int | Collection[int],
        fraction: float = 1.0,
        count: int | None = None,
        verbs: Collection[str] | None = WRITES,
        resources: Collection[str] | None = None,
        retry_after: int = 1,
    ) -> None:
        """Fail `user`'s requests with `status` (one picked at random when several): `fraction` of
        them, or the next `count`. `verbs`/`resources` narrow it (None: any); writes by default."""
        statuses = (status,) if isinstance(status, int) else tuple(status)
        unknown = [code for code in statuses if code not in _REASONS]
        if unknown or not statuses:
            raise ValueError(f"can inject {sorted(_REASONS)}, not {unknown or 'nothing'}")
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be within 0..1, got {fraction}")
        rule = _Rule(
            user=user,
            statuses=statuses,
            fraction=fraction,
            remaining=count,
            verbs=None if verbs is None else frozenset(verbs),
            resources=None if resources is None else frozenset(resources),
            retry_after=retry_after,
        )
        with self._lock:
            self._rules.append(rule)

    def drop_watches(self, *, user: str, every: float | None) -> None:
        """End each of `user`'s watches `every` seconds after it opened, or after now for those
        already open (None: stop dropping)."""
        with self._lock:
            self._watch_user, self._watch_every = (user, every) if every is not None else (None, None)
            open_now = [(request, loop) for request, loop, owner in self._watches.values() if owner == user]
        if every is not None:
            for request, loop in open_now:
                loop.call_soon_threadsafe(loop.call_later, every, self._cut, request)

    def cut_watches(self, *, user: str | None = None) -> int:
        """End every watch open now (only `user`'s, if given); returns how many."""
        with self._lock:
            open_now = [(r, loop) for r, loop, owner in self._watches.values() if user in (None, owner)]
        for request, loop in open_now:
            loop.call_soon_threadsafe(self._cut, request)
        return len(open_now)

    def clear(self) -> None:
        """No more faults (watches already open stay open)."""
        with self._lock:
            self._rules.clear()
            self._watch_user = self._watch_every = None

    @property
    def open_watches(self) -> int:
        with self._lock:
            return len(self._watches)

    @property
    def active(self) -> bool:
        return bool(self._rules) or self._watch_user is not None

    # ---- the server's side -------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # Watches are followed even with no fault set, so one turned on later can cut them too.
        watching = "/watch/" in request.path or flag(request.query.get("watch"))
        if not (self.active or watching):
            return await handler(request)
        user = await self._user(request)
        if user is None:
            return await handler(request)
        info = parse_request(request.method, request.path, request.query)
        refusal = self._refusal(user, info.verb, info.resource)
        if refusal is not None:
            return refusal
        if info.verb != "watch":
            return await handler(request)
        loop = asyncio.get_running_loop()
        every = self._watch_every if user == self._watch_user else None
        timer = loop.call_later(every, self._cut, request) if every is not None else None
        with self._lock:
            self._watches[id(request)] = (request, loop, user)
        try:
            return await handler(request)
        finally:
            if timer is not None:
                timer.cancel()
            with self._lock:
                self._watches.pop(id(request), None)

    async def _user(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        token = header[len("Bearer ") :]
        if token not in self._users:
            user = await self._authenticate(token)
            self._users[token] = user.name if user is not None else None
        return self._users[token]

    def _refusal(self, user: str, verb: str, resource: str) -> web.Response | None:
        with self._lock:
            for rule in self._rules:
                if rule.user != user or (rule.verbs is not None and verb not in rule.verbs):
                    continue
                if rule.resources is not None and resource not in rule.resources:
                    continue
                if rule.remaining is not None:
                    if rule.remaining <= 0:
                        continue
                    rule.remaining -= 1
                elif self._random.random() >= rule.fraction:
                    continue
                code = self._random.choice(rule.statuses)
                self.injected[str(code)] += 1
                return _status_response(code, retry_after=rule.retry_after)
        return None

    def _cut(self, request: web.Request) -> None:
        with self._lock:
            if self._watches.get(id(request), (None,))[0] is not request:
                return  # that watch has ended: its connection may be serving another request now
        transport = request.transport
        if transport is not None and not transport.is_closing():
            self.injected["watch-cut"] += 1
            transport.close()


def _status_response(code: int, *, retry_after: int) -> web.Response:
    reason, message = _REASONS[code]
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    headers = {"Retry-After": str(retry_after)} if code in (429, 503) else {}
    if code == 429:
        body["details"] = {"retryAfterSeconds": retry_after}
    return web.Response(status=code, text=json.dumps(body), content_type="application/json", headers=headers)
