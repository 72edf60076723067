"""`jitgrant mcp`: the agent tools over the Model Context Protocol (needs the `mcp` extra).

The tools are thin: each calls `jitgrant.client.AsyncClient`, the same path as `jitgrant request` and
Python agents, so the answers, errors and isolation between agents are the client's.
"""

from jitgrant.mcp.server import build_server, serve

__all__ = ["build_server", "serve"]
