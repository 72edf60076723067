"""What a read-only CLI call costs in wall time, next to the floor `python -c pass` measured in the
same run: --help, --version, list, get, describe and policies against a local fake API server (plain
HTTP on 127.0.0.1, answering in microseconds, so the figures are the CLI's own cost).

Run: PYTHONPATH=operator python bench/cli_speed.py [--runs 7] [--compare DIR]
`--compare DIR`: also time the same commands with DIR (another checkout's operator/ directory) first on
the path, e.g. a `git archive` of an older commit. Prints medians; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REQUEST = {
    "apiVersion": "jitgrant.dev/v1alpha1",
    "kind": "AccessRequest",
    "metadata": {
        "name": "r1",
        "namespace": "agents",
        "resourceVersion": "5",
        "creationTimestamp": "2026-01-01T00:00:00Z",
    },
    "spec": {
        "policy": "prod-restart",
        "namespace": "payments",
        "clusterRole": "jit-restart-checkout",
        "justification": "INC-1",
        "requester": {"username": "agent"},
    },
    "status": {"phase": "Pending", "reason": "AwaitingApproval", "message": "waiting"},
}
POLICY = {
    "apiVersion": "jitgrant.dev/v1alpha1",
    "kind": "GrantPolicy",
    "metadata": {"name": "prod-restart"},
    "spec": {
        "target": {"cluster": "local", "namespaces": ["payments"]},
        "requesters": {"users": ["agent"]},
        "grantable": {"clusterRoles": ["jit-restart-checkout"]},
        "maxDuration": "15m",
        "approval": {"required": True, "minApprovals": 1, "approvers": {"groups": ["sre"]}},
    },
}


class FakeApiServer(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path.endswith("/accessrequests"):
            self._send(
                200, {"kind": "AccessRequestList", "metadata": {"resourceVersion": "5"}, "items": [REQUEST]}
            )
        elif path.endswith("/accessrequests/r1"):
            self._send(200, REQUEST)
        elif path.endswith("/grantpolicies"):
            self._send(200, {"kind": "GrantPolicyList", "metadata": {}, "items": [POLICY]})
        elif path.endswith("/grantpolicies/prod-restart"):
            self._send(200, POLICY)
        elif "/clusterroles/" in path:
            rules = [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]}]
            self._send(
                200, {"kind": "ClusterRole", "metadata": {"name": path.rsplit("/", 1)[1]}, "rules": rules}
            )
        else:
            self._send(404, {"kind": "Status", "code": 404, "message": "not found", "reason": "NotFound"})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(201, {"status": {"userInfo": {"username": "agent", "groups": ["system:authenticated"]}}})


def median_seconds(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """Median wall time, and median CPU time (user + system: what the machine's other load changes
    least, on a shared machine the steadier figure)."""
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)  # noqa: S603
        times.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--compare", metavar="DIR", help="another checkout's operator/ directory")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApiServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="cli-speed-") as directory:
        kubeconfig = Path(directory) / "config"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}
                    ],
                    "users": [{"name": "u", "user": {"token": "t"}}],
                    "contexts": [
                        {"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "agents"}}
                    ],
                    "current-context": "x",
                }
            )
        )
        here = str(Path(__file__).resolve().parent.parent / "operator")
        trees = {"this": here} | ({"compare": str(Path(args.compare).resolve())} if args.compare else {})
        commands = {
            "--help": ["--help"],
            "--version": ["--version"],
            "list": ["list"],
            "get r1": ["get", "r1"],
            "describe r1": ["describe", "r1"],
            "policies": ["policies"],
        }
        floor, floor_cpu = median_seconds([sys.executable, "-c", "pass"], dict(os.environ), args.runs)
        print(
            f"floor `python -c pass`: {floor * 1000:.0f} ms wall, {floor_cpu * 1000:.0f} ms CPU "
            f"(medians of {args.runs})"
        )
        print(f"{'command':<14}" + "".join(f"{name + ' wall':>22}{name + ' CPU':>22}" for name in trees))
        for label, argv in commands.items():
            cells = []
            for tree in trees.values():
                env = dict(os.environ, PYTHONPATH=tree, KUBECONFIG=str(kubeconfig))
                if label == "describe r1" and not (Path(tree) / "jitgrant/cli/parsers.py").read_text().count(
                    '"describe"'
                ):
                    argv = ["get", "r1"]  # before `describe` existed, `get NAME` printed the prose view
                seconds, cpu = median_seconds(
                    [sys.executable, "-m", "jitgrant.cli.main", *argv], env, args.runs
                )
                cells.append(f"{seconds * 1000:6.0f} ms ({seconds / floor:4.1f}x)")
                cells.append(f"{cpu * 1000:6.0f} ms ({cpu / max(floor_cpu, 0.001):4.1f}x)")
            print(f"{label:<14}" + "".join(f"{cell:>22}" for cell in cells))
    server.shutdown()


if __name__ == "__main__":
    main()
