"""Faults with nothing lost: SIGKILL the operator at steps of the lifecycle, restart it, check.

Each fault runs `--runs` times against the embedded cluster with the operator as its own process
(bench/grants.py's harness): file requests, SIGKILL the operator at the step, start it again, and
wait for every request to reach its end state. Checked after each run: orphans (a managed RoleBinding
in `payments` that no Active request names as its grant) and the worst lag (expiresAt or the
revocation -> RoleBinding gone). Prints a table: fault, runs, orphans, lost records, worst lag.

Not covered yet (issue 16, part 4): 409/429/5xx injection, dropped watches, a dead audit sink, a
hanging target, clock skew, and the audit check (`audit verify`, each transition exactly once):
"lost records" prints "-".

Run: `make chaos` or `python tests/chaos/run_chaos.py [--runs N]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # bench/grants.py's harness

from grants import Bench, OperatorProcess, Watcher, _wait, environment  # type: ignore[import-not-found]
from kubernetes.client import CustomObjectsApi, RbacAuthorizationV1Api

from jitgrant.models.vocabulary import REVOKE_ANNOTATION

COUNT = 10


def _requests(env: Any) -> dict[str, dict[str, Any]]:
    items = CustomObjectsApi(env.admin).list_namespaced_custom_object(
        "jitgrant.dev", "v1alpha1", "agents", "accessrequests"
    )["items"]
    return {item["metadata"]["name"]: item for item in items}


def orphans(env: Any) -> int:
    """Managed RoleBindings no Active request names as its grant."""
    named = {
        ((item.get("status") or {}).get("grant") or {}).get("roleBinding")
        for item in _requests(env).values()
        if (item.get("status") or {}).get("phase") == "Active"
    }
    bindings = (
        RbacAuthorizationV1Api(env.admin)
        .list_namespaced_role_binding("payments", label_selector="app.kubernetes.io/managed-by=jitgrant")
        .items
    )
    return sum(1 for b in bindings if b.metadata.name not in named)


def _phases(env: Any, names: list[str]) -> dict[str, str | None]:
    current = _requests(env)
    return {n: ((current.get(n) or {}).get("status") or {}).get("phase") for n in names}


def run_fault(
    env: Any, workdir: Any, bench: Bench, watcher: Watcher, fault: str, index: int
) -> tuple[int, float]:
    """One run of one fault; returns (orphans, worst lag in seconds)."""

    def start(suffix: str) -> OperatorProcess:
        identity = f"chaos-{index}-{suffix}"
        return OperatorProcess(env, workdir, identity=identity, leader_elect=False, webhooks=True).start()

    operator = start("a")
    names = bench.names(COUNT)
    worst = 0.0
    try:
        if fault == "kill while activating":
            bench.file(names, "10m")
            time.sleep(0.3)  # some Active, some in flight
            operator.kill()
            operator = start("b")
            _wait(lambda: all(p == "Active" for p in _phases(env, names).values()), timeout=120)
        elif fault == "kill at expiry":
            bench.file(names, "10m")
            _wait(lambda: all(p == "Active" for p in _phases(env, names).values()), timeout=120)
            due_at = datetime.now(UTC).timestamp() + 3
            due = bench.set_expiry(names, lambda _: datetime.fromtimestamp(due_at, UTC))
            time.sleep(max(0.0, due_at - time.time()) + 0.2)
            operator.kill()  # mid-expiry: some bindings gone, some not
            operator = start("b")
            _wait(lambda: all(n in watcher.deleted for n in names), timeout=120)
            worst = max((watcher.deleted.get(n, time.time()) - due[n] for n in names), default=0.0)
        elif fault == "kill while revoking":
            bench.file(names, "10m")
            _wait(lambda: all(p == "Active" for p in _phases(env, names).values()), timeout=120)
            asked = time.time()
            for name in names:
                env.annotate_request("agents", name, {REVOKE_ANNOTATION: "INC-1 chaos"}, client=env.admin)
            time.sleep(0.2)
            operator.kill()
            operator = start("b")
            _wait(lambda: all(n in watcher.deleted for n in names), timeout=120)
            worst = max((watcher.deleted.get(n, time.time()) - asked for n in names), default=0.0)
        _wait(lambda: orphans(env) == 0, timeout=30)  # the sweep or the lifecycle may still be finishing
        return orphans(env), worst
    finally:
        operator.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    faults = ["kill while activating", "kill at expiry", "kill while revoking"]
    rows = []
    with environment() as (env, workdir):
        bench = Bench(env, workdir)
        watcher = Watcher(env).start()
        try:
            for fault in faults:
                found, worst = 0, 0.0
                for index in range(args.runs):
                    o, w = run_fault(env, workdir, bench, watcher, fault, index)
                    found += o
                    worst = max(worst, w)
                rows.append((fault, args.runs, found, worst))
        finally:
            watcher.stop()
    print(f"{'fault':<24} {'runs':>4} {'orphans':>7} {'lost records':>12} {'worst lag':>9}")
    for fault, runs, found, worst in rows:
        print(f"{fault:<24} {runs:>4} {found:>7} {'-':>12} {worst:>8.1f}s")
    return 1 if any(found for _, _, found, _ in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
