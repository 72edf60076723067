"""An HTTP webhook for SIEMs: a JSON POST per batch, optionally with a bearer token and an HMAC.

Body: `{"entries": [<entry>, ...]}` where each entry is the exact canonical JSON stored everywhere
else, so the receiver can verify the chain too. With `hmacSecretFile`, the header (by default
`X-Jitgrant-Signature`) carries `sha256=<hex HMAC-SHA256 of the body>`. A retried batch can repeat
entries: receivers deduplicate by (instance, seq, hash).
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from jitgrant.audit.config import WebhookSinkConfig
from jitgrant.audit.sinks.base import Entry, SinkError


def _read_secret(path: Path | None) -> bytes | None:
    # Read on every batch so a rotated Secret is picked up without a restart.
    return None if path is None else Path(path).read_bytes().strip()


def body_signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookSink:
    def __init__(self, config: WebhookSinkConfig, *, name: str) -> None:
        self.name = name
        self._config = config
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # never the secrets, only where they come from
        return f"WebhookSink(name={self.name!r}, url={self._config.url!r})"

    async def start(self) -> None:
        return None

    def _session_(self) -> aiohttp.ClientSession:
        if self._session is None:
            ssl_context: ssl.SSLContext | bool = True
            if self._config.ca_file is not None:
                ssl_context = ssl.create_default_context(cafile=str(self._config.ca_file))
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._config.timeout_seconds),
                connector=aiohttp.TCPConnector(ssl=ssl_context),
            )
        return self._session

    async def write(self, entries: Sequence[Entry]) -> None:
        body = b'{"entries":[' + b",".join(entry.line for entry in entries) + b"]}"
        headers = {"Content-Type": "application/json"}
        try:
            token = _read_secret(self._config.bearer_token_file)
            secret = _read_secret(self._config.hmac_secret_file)
        except OSError as exc:
            raise SinkError(f"webhook {self.name}: cannot read its secret file: {exc.strerror}") from exc
        if token is not None:
            headers["Authorization"] = "Bearer " + token.decode()
        if secret is not None:
            headers[self._config.signature_header] = body_signature(secret, body)
        try:
            async with self._session_().post(self._config.url, data=body, headers=headers) as response:
                if not 200 <= response.status < 300:
                    raise SinkError(
                        f"webhook {self._config.url} answered {response.status} {response.reason}"
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SinkError(f"webhook {self._config.url}: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
