"""How fast grants become active and how late they end, against the embedded cluster.

Files N requests at once (auto-approved), then reads each request's own timestamps: request to
Active (creationTimestamp -> activatedAt) and revocation lag (expiresAt -> endedAt). Prints the
figures; asserts nothing. Run: `make bench` or `python bench/lifecycle_latency.py [N]`.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime, timedelta

from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _quantiles(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"p50 {statistics.median(values):.2f}s  p95 {p95:.2f}s  max {values[-1]:.2f}s"


def main(count: int) -> None:
    with Environment(sweep_interval=timedelta(seconds=5)) as env:
        env.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
        [policy] = load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml")
        # One agent files every request for one scope: the guardrail (issue 31) is off for the bench.
        policy["spec"]["limits"] = {"oneOpenPerScope": False}
        env.apply([policy])
        env.allow_to_request("agents", service_account="oncall-agent")
        agent = env.client_for_service_account("agents", "oncall-agent")
        started = time.monotonic()
        for index in range(count):
            env.create_request(
                {
                    "apiVersion": "jitgrant.dev/v1alpha1",
                    "kind": "AccessRequest",
                    "metadata": {"name": f"bench-{index}", "namespace": "agents"},
                    "spec": {
                        "policy": "oncall-restart",
                        "namespace": "payments",
                        "clusterRole": "jit-restart-checkout",
                        "duration": "5s",
                        "justification": f"INC-{index} benchmark",
                    },
                },
                client=agent,
            )
        filed = time.monotonic() - started
        deadline = time.monotonic() + 120
        while True:
            objs = [env.get_request("agents", f"bench-{i}") for i in range(count)]
            phases = [(o.get("status") or {}).get("phase") for o in objs]
            if all(p in ("Expired", "Failed", "Denied") for p in phases) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        expired = [o for o in objs if (o.get("status") or {}).get("phase") == "Expired"]
        to_active = [
            (_t(o["status"]["activatedAt"]) - _t(o["metadata"]["creationTimestamp"])).total_seconds()
            for o in expired
        ]
        lag = [(_t(o["status"]["endedAt"]) - _t(o["status"]["expiresAt"])).total_seconds() for o in expired]
        print(f"requests filed:        {count} in {filed:.2f}s ({count / filed:.1f}/s through both webhooks)")
        print(f"expired as expected:   {len(expired)}/{count}")
        if expired:
            print(f"request -> Active:     {_quantiles(to_active)}  (status timestamps have 1 s resolution)")
            print(f"revocation lag:        {_quantiles(lag)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
