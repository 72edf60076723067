"""Admission at 10,000 live grants (issue 31 §2): the validating webhook's answer to a new request
must not grow with the number of open requests, because its guardrails (one open request per scope,
caps and rates, the policy gate) read an index instead of listing requests.

Runs the validating webhook's handler (`validate_request`: the requester seal, the policy gate, the
duplicate and limit checks, as a real CREATE reaches it, minus kopf's HTTP) against a runtime whose
index holds 0 open requests (the floor) and then 10,000 (Active, of 1,000 requesters), interleaved in
rounds so both see the same machine load. Prints each p50 (median round) and p99 (quietest round:
the tails of a 30-microsecond call on shared cores are other processes' preemptions) and the ratio of
the p99s, and exits 1 when the ratio is over 1.2.
Run: `python bench/admission_index.py [--live N] [--calls N] [--rounds N] [--json]`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jitgrant.identity.stamp import seal_requester, stamp_to_wire
from jitgrant.lifecycle.open_requests import OpenRequests, RefusalTally
from jitgrant.models import GrantPolicySpec, RequesterStamp
from jitgrant.operator.admission import validate_request
from jitgrant.policy.gate import ReadyState
from jitgrant.settings import OperatorSettings

KEY = b"bench-receipt-key-0123456789abcdef"
LIMIT = 1.2
POLICY = GrantPolicySpec.model_validate(
    {
        "requesters": {"groups": ["agents"]},
        "namespaces": ["*"],
        "grants": [{"clusterRole": "jit-restart"}],
        "maxDuration": "15m",
        "limits": {"maxOpenPerRequester": 50, "maxRequestsPerHour": 1000},
    }
)


@dataclass
class BenchRuntime:
    """What the validating webhook reads from memo.runtime, all in memory (no API server call)."""

    settings: OperatorSettings
    open_requests: OpenRequests = field(default_factory=OpenRequests)
    refusals: RefusalTally = field(default_factory=RefusalTally)
    watched_policies: dict[str, GrantPolicySpec] = field(default_factory=lambda: {"bench": POLICY})
    watched_ready: dict[str, ReadyState] = field(
        default_factory=lambda: {"bench": ReadyState("True", "PolicyReady", "ok", current=True)}
    )
    clock: Any = lambda: datetime.now(UTC)

    async def get_policy(self, name: str) -> GrantPolicySpec | None:
        return self.watched_policies.get(name)


def _body(index: int, *, requester: str, phase: str | None, sealed: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "policy": "bench",
        "namespace": f"ns-{index % 500}",
        "clusterRole": "jit-restart",
        "duration": "10m",
        "justification": "INC-1",
        "requester": stamp_to_wire(RequesterStamp(username=requester, groups=("agents",))),
    }
    meta: dict[str, Any] = {
        "name": f"r-{index}",
        "namespace": "agents",
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "uid": f"uid-{index}",
    }
    if sealed:
        seal = seal_requester(key=KEY, namespace="agents", name=meta["name"], spec=spec)
        meta["annotations"] = {"jitgrant.dev/requester-seal": seal}
    body: dict[str, Any] = {"apiVersion": "jitgrant.dev/v1alpha1", "kind": "AccessRequest", "metadata": meta}
    body["spec"] = spec
    if phase is not None:
        body["status"] = {"phase": phase, "expiresAt": "2099-01-01T00:00:00Z"}
    return body


def runtime_with(live: int) -> BenchRuntime:
    runtime = BenchRuntime(settings=OperatorSettings(receipt_key=KEY, operator_namespace="jitgrant-system"))
    for index in range(live):
        requester = f"system:serviceaccount:agents:agent-{index % 1000}"
        runtime.open_requests.observe(_body(index, requester=requester, phase="Active", sealed=False))
    return runtime


async def _timings(runtime: BenchRuntime, calls: int, offset: int) -> list[float]:
    memo = type("Memo", (), {"runtime": runtime})()
    userinfo = {"username": "system:serviceaccount:agents:new-agent", "groups": ["agents"]}
    seconds: list[float] = []
    for index in range(calls):
        # A fresh requester and scope each time: every call is admitted, as the common case is.
        requester = f"system:serviceaccount:agents:fresh-{offset + index}"
        body = _body(1_000_000 + offset + index, requester=requester, phase=None, sealed=True)
        started = time.perf_counter()
        await validate_request(body=body, userinfo=userinfo, memo=memo, operation="CREATE", dryrun=False)
        seconds.append(time.perf_counter() - started)
    return seconds


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(live: int, calls: int, rounds: int) -> dict[str, Any]:
    floor, loaded = runtime_with(0), runtime_with(live)
    await _timings(floor, 200, 0)  # warm-up: imports, caches, the first pydantic validations
    await _timings(loaded, 200, 0)
    p99s: dict[str, list[float]] = {"floor": [], "loaded": []}
    p50s: dict[str, list[float]] = {"floor": [], "loaded": []}
    for round_ in range(rounds):
        for label, runtime in (("floor", floor), ("loaded", loaded)):
            gc.collect()  # each round starts from the same heap state; both runtimes live throughout
            seconds = await _timings(runtime, calls, (round_ + 1) * 100_000)
            p99s[label].append(_p(seconds, 0.99))
            p50s[label].append(_p(seconds, 0.50))
    result = {
        label: {
            "p50_ms": statistics.median(p50s[label]) * 1000,
            # The quietest round's p99: on shared cores a round's tail is mostly other processes'
            # preemptions, which land on either side at random; the best round is the code's own.
            "p99_ms": min(p99s[label]) * 1000,
        }
        for label in p99s
    }
    return {
        "live": live,
        "calls_per_round": calls,
        "rounds": rounds,
        **result,
        "ratio": result["loaded"]["p99_ms"] / result["floor"]["p99_ms"],
        "limit": LIMIT,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live", type=int, default=10_000, help="open requests in the index")
    parser.add_argument("--calls", type=int, default=1_000, help="admission calls per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = asyncio.run(measure(args.live, args.calls, args.rounds))
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"validating webhook, one CREATE ({args.rounds} interleaved rounds of {args.calls} calls; "
            "p50: median round, p99: quietest round)"
        )
        print(f"{'open requests':>14} {'p50 ms':>8} {'p99 ms':>8}")
        print(f"{0:>14} {figures['floor']['p50_ms']:>8.3f} {figures['floor']['p99_ms']:>8.3f}   (floor)")
        print(f"{args.live:>14} {figures['loaded']['p50_ms']:>8.3f} {figures['loaded']['p99_ms']:>8.3f}")
        print(f"p99 ratio {figures['ratio']:.2f} (limit {LIMIT})")
    if figures["ratio"] > LIMIT:
        print(
            f"FAIL: admission p99 at {args.live} live grants is {figures['ratio']:.2f}x the floor",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
