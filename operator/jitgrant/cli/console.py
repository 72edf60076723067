"""`jitgrant console`: the approvers' web console (docs/console.md).

Locally it listens on 127.0.0.1 and acts with your kubeconfig; it prints a one-time sign-in link.
In the cluster (the chart's `console.enabled`) it signs people in with OIDC and acts with their token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import webbrowser
from typing import Any

from jitgrant.cli.exitcodes import ExitCode


def add_console_subcommand(sub: Any) -> None:
    console = sub.add_parser(
        "console",
        help="a web console for approvers, acting only as the person signed in",
        description="Serve the approvers' web console. Locally (the default) it binds 127.0.0.1, acts "
        "with your kubeconfig and prints a one-time sign-in link. With --oidc-issuer it signs people "
        "in with OIDC (authorization code + PKCE) and acts with each person's ID token.",
    )
    console.add_argument("--port", type=int, default=0, help="port to listen on (default: any free one)")
    console.add_argument("--no-browser", action="store_true", help="print the link, do not open a browser")
    console.add_argument(
        "--audit-log",
        metavar="PATH",
        action="append",
        default=[],
        help="the API server's audit log file, to show what each grant was used for",
    )
    console.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG)")
    console.add_argument("--context", default=None, help="kubeconfig context")
    console.add_argument("-n", "--namespace", default=None, help="namespace listed when you cannot list all")
    console.set_defaults(func=cmd_console)


def cmd_console(args: argparse.Namespace) -> int:
    try:
        from jitgrant.console.cli import serve_local
    except ImportError as exc:  # pragma: no cover - aiohttp is a dependency; the extra adds nothing yet
        print(f"error: jitgrant console needs: pip install 'jitgrant[console]' ({exc})", file=sys.stderr)
        return int(ExitCode.USAGE)

    def opened(url: str) -> None:
        print(f"jitgrant console: sign in at {url} (the link works once)", flush=True)
        if not args.no_browser:
            webbrowser.open(url)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve_local(
                kubeconfig=args.kubeconfig,
                context=args.context,
                namespace=args.namespace,
                port=args.port,
                audit_logs=args.audit_log,
                on_ready=opened,
            )
        )
    return int(ExitCode.OK)
