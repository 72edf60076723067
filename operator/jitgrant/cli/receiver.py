"""`jitgrant activity-receiver`: the audit webhook backend's receiving end, as a long-running process.

A control plane that writes no audit log file this operator (or `jitgrant activity`) can read posts
its Events here (`--audit-webhook-config-file`); they land in a file `jitgrant activity --audit-log`
reads as it reads kube-apiserver's own log.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from jitgrant.activity.webhook import AuditWebhookReceiver, start, tls_context
from jitgrant.cli.exitcodes import ExitCode


def _token(path: Path | None) -> str | None:
    if path is None:
        return None
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"--token-file {path} is empty")
    return token


async def _serve(args: argparse.Namespace) -> None:
    receiver = AuditWebhookReceiver(
        args.audit_log,
        token=_token(args.token_file),
        max_bytes=args.max_size_mb * 2**20,
        max_backups=args.max_backups,
    )
    tls = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        tls = tls_context(args.tls_cert, args.tls_key, client_ca=args.client_ca)
    elif args.client_ca:
        raise ValueError("--client-ca needs --tls-cert and --tls-key (client certificates need TLS)")
    runner, port = await start(receiver, host=args.listen, port=args.port, tls=tls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    scheme = "https" if tls is not None else "http"
    # One line a supervisor (or a test) can read the bound port from, when --port 0 was given.
    print(f"receiving audit events on {scheme}://{args.listen}:{port}/ into {args.audit_log}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        print(f"stopped after {receiver.batches} batches, {receiver.events} events", flush=True)


def cmd_receive(args: argparse.Namespace) -> int:
    try:
        asyncio.run(_serve(args))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    return ExitCode.OK
