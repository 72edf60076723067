"""A webhook server that answers each path with a canned, possibly malformed, AdmissionReview reply.

jitgrant_testing.webhooks always echoes the uid and wraps a well-formed review; the reply probes need
the faults an API server must catch (a wrong uid, apiVersion or patchType, a patch from a validating
webhook, bodies that are not JSON), so the reply for `/reply/<case>` is REPLIES[case] of the request.
Both API servers call the same instance over HTTPS on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from embedkube.tls import make_certificates

Reply = Callable[[Mapping[str, Any]], tuple[int, bytes]]
V1 = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}


def b64(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return base64.b64encode(text.encode()).decode()


def review(response: Mapping[str, Any] | None, *, uid: bool = True, **envelope: Any) -> Reply:
    """A reply of `envelope` (default apiVersion/kind v1) around `response`, with the request's uid
    added unless `uid` is False (then `response` carries its own, or none)."""

    def reply(request: Mapping[str, Any]) -> tuple[int, bytes]:
        body: dict[str, Any] = {**V1, **envelope}
        if response is not None:
            body["response"] = {**({"uid": request["request"]["uid"]} if uid else {}), **response}
        return 200, json.dumps(body).encode()

    return reply


def raw(status: int, text: str) -> Reply:
    return lambda request: (status, text.encode())


ADD_LABEL = [{"op": "add", "path": "/metadata/labels/patched", "value": "yes"}]

REPLIES: Mapping[str, Reply] = {
    "allow": review({"allowed": True}),
    "patch-ok": review({"allowed": True, "patchType": "JSONPatch", "patch": b64(ADD_LABEL)}),
    "patch-empty-list": review({"allowed": True, "patchType": "JSONPatch", "patch": b64([])}),
    "patch-no-type": review({"allowed": True, "patch": b64(ADD_LABEL)}),
    "type-no-patch": review({"allowed": True, "patchType": "JSONPatch"}),
    "type-empty": review({"allowed": True, "patchType": "", "patch": b64(ADD_LABEL)}),
    "type-merge": review({"allowed": True, "patchType": "MergePatch", "patch": b64(ADD_LABEL)}),
    "type-merge-object": review(
        {"allowed": True, "patchType": "MergePatch", "patch": b64({"metadata": {"labels": {"a": "b"}}})}
    ),
    "patch-not-json": review({"allowed": True, "patchType": "JSONPatch", "patch": b64("not json")}),
    "patch-object": review({"allowed": True, "patchType": "JSONPatch", "patch": b64({"op": "add"})}),
    "patch-bad-op": review(
        {"allowed": True, "patchType": "JSONPatch", "patch": b64([{"op": "remove", "path": "/nope"}])}
    ),
    "patch-unknown-op": review(
        {"allowed": True, "patchType": "JSONPatch", "patch": b64([{"op": "frob", "path": "/data"}])}
    ),
    "patch-not-base64": review({"allowed": True, "patchType": "JSONPatch", "patch": "%%%"}),
    "v1beta1": review({"allowed": True}, apiVersion="admission.k8s.io/v1beta1"),
    "wrong-group": review({"allowed": True}, apiVersion="probe.dev/v1"),
    "wrong-kind": review({"allowed": True}, kind="AdmissionResponse"),
    "no-type-meta": review({"allowed": True}, apiVersion="", kind=""),
    "no-response": review(None),
    "uid-wrong": review({"allowed": True, "uid": "not-the-request-uid"}, uid=False),
    "uid-missing": review({"allowed": True}, uid=False),
    "not-json": raw(200, "this is not json"),
    "http-500": raw(500, "webhook broke"),
    "validating-patch": review({"allowed": True, "patchType": "JSONPatch", "patch": b64(ADD_LABEL)}),
    "validating-patch-only": review({"allowed": True, "patch": b64(ADD_LABEL)}),
    "validating-type-only": review({"allowed": True, "patchType": "JSONPatch"}),
    "deny-code": review(
        {"allowed": False, "status": {"code": 422, "reason": "Invalid", "message": "too big"}}
    ),
    "deny-message": review({"allowed": False, "status": {"message": "not today"}}),
    "deny-low-code": review({"allowed": False, "status": {"code": 200, "message": "low"}}),
    "deny-reason-only": review({"allowed": False, "status": {"reason": "NotToday"}}),
    "deny-bare": review({"allowed": False}),
    "deny-allowed-missing": review({"warnings": ["no allowed field"]}),
    "deny-details": review(
        {
            "allowed": False,
            "status": {
                "code": 409,
                "reason": "Conflict",
                "message": "clash",
                "details": {"name": "x", "causes": [{"field": "data.k", "message": "taken"}]},
            },
        }
    ),
    "warn": review({"allowed": True, "warnings": ["first warning", "second warning"]}),
    "deny-warn": review({"allowed": False, "warnings": ["said no"], "status": {"message": "no"}}),
    "ignored-bad-reply": review({"allowed": True, "patch": b64(ADD_LABEL)}),
}


class ReplyServer:
    """HTTPS on 127.0.0.1, a thread per request; `base + "/<case>"` is the URL for a REPLIES entry."""

    def __init__(self) -> None:
        self.certificates = make_certificates(("127.0.0.1",), common_name="probe-replies")
        self.ca_bundle = base64.b64encode(self.certificates.ca_pem).decode()
        self.seen: list[str] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                case = urlsplit(self.path).path.rsplit("/", 1)[-1]  # the real server adds ?timeout=
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                seen.append(case)
                status, body = REPLIES[case](request)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = False
        self._httpd.block_on_close = True
        context: ssl.SSLContext = self.certificates.server_context()
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        """Where `/<case>` answers with REPLIES[case]."""
        return f"https://127.0.0.1:{self.port}/reply"

    def __enter__(self) -> ReplyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)
