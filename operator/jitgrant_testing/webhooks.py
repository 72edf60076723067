"""A small HTTPS admission webhook server for tests and benchmarks, on its own thread and event loop."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from embedkube.tls import make_certificates

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class WebhookServer:
    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.requests: dict[str, list[dict[str, Any]]] = {}
        self.certificates = make_certificates(("127.0.0.1",), common_name="webhook")
        self.ca_bundle = base64.b64encode(self.certificates.ca_pem).decode()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    def route(self, path: str, handler: Handler) -> str:
        self.handlers[path] = handler
        self.requests[path] = []
        return f"https://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        review = await request.json()
        self.requests[request.path].append(review["request"])
        response = await self.handlers[request.path](review["request"])
        response["uid"] = review["request"]["uid"]
        return web.json_response(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        )

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(
            self._runner, "127.0.0.1", 0, ssl_context=self.certificates.server_context()
        ).start()
        self.port = int(self._runner.addresses[0][1])

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def allow(**extra: Any) -> Handler:
    async def handler(request: dict[str, Any]) -> dict[str, Any]:
        return {"allowed": True, **extra}

    return handler


def deny(message: str, code: int | None = None) -> Handler:
    async def handler(request: dict[str, Any]) -> dict[str, Any]:
        status: dict[str, Any] = {"message": message}
        if code is not None:
            status["code"] = code
        return {"allowed": False, "status": status}

    return handler


def json_patch(operations: list[dict[str, Any]]) -> Handler:
    import json

    async def handler(request: dict[str, Any]) -> dict[str, Any]:
        return {
            "allowed": True,
            "patchType": "JSONPatch",
            "patch": base64.b64encode(json.dumps(operations).encode()).decode(),
        }

    return handler
