"""Starting and stopping the console's web server."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from jitgrant.console.app import Console


@dataclass
class Server:
    console: Console
    host: str = "127.0.0.1"
    port: int = 0
    _runner: web.AppRunner | None = field(default=None, init=False)

    async def start(self) -> str:
        """Listen, and return the base URL (the port is chosen when 0)."""
        self._runner = web.AppRunner(
            self.console.app(),
            access_log=None,
            shutdown_timeout=2.0,
            # A live-update stream ends with its page: its watch on the API server with it.
            handler_cancellation=True,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = self._runner.addresses
        self.port = int(sockets[0][1])
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.host in ("127.0.0.1", "localhost", "::1"):
            # The names a browser on this machine uses for it, and nothing else.
            self.console.allowed_hosts.update({f"127.0.0.1:{self.port}", f"localhost:{self.port}"})
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
