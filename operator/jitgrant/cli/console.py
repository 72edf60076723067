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
    oidc = console.add_argument_group(
        "in the cluster (OIDC)",
        "sign people in with the issuer the API server trusts; act with their ID token",
    )
    oidc.add_argument(
        "--oidc-issuer", metavar="URL", help="the issuer URL, exactly as the API server trusts it"
    )
    oidc.add_argument(
        "--oidc-client-id", metavar="ID", help="this console's client id (the API server's audience)"
    )
    oidc.add_argument(
        "--oidc-client-secret-file", metavar="PATH", help="the client secret, if the client has one"
    )
    oidc.add_argument(
        "--oidc-ca-file", metavar="PATH", help="CA bundle to verify the issuer's TLS certificate"
    )
    oidc.add_argument("--public-url", metavar="URL", help="where people reach the console (https://...)")
    oidc.add_argument("--listen", metavar="HOST:PORT", default="0.0.0.0:8080", help="default %(default)s")
    console.set_defaults(func=cmd_console)


def cmd_console(args: argparse.Namespace) -> int:
    if args.oidc_issuer:
        return _in_cluster(args)
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


def _in_cluster(args: argparse.Namespace) -> int:
    from jitgrant.console.cli import serve_oidc

    missing = [flag for flag in ("oidc_client_id", "public_url") if not getattr(args, flag)]
    if missing:
        names = ", ".join("--" + flag.replace("_", "-") for flag in missing)
        print(f"error: with --oidc-issuer, also give {names}", file=sys.stderr)
        return int(ExitCode.USAGE)
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        print(f"error: --listen {args.listen!r}: give HOST:PORT, such as 0.0.0.0:8080", file=sys.stderr)
        return int(ExitCode.USAGE)
    secret = None
    if args.oidc_client_secret_file:
        with open(args.oidc_client_secret_file) as handle:
            secret = handle.read().strip()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve_oidc(
                issuer=args.oidc_issuer,
                client_id=args.oidc_client_id,
                client_secret=secret,
                ca_file=args.oidc_ca_file,
                public_url=args.public_url,
                host=host,
                port=int(port),
                kubeconfig=args.kubeconfig,
                namespace=args.namespace,
            )
        )
    return int(ExitCode.OK)
