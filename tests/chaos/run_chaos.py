"""Faults with nothing lost: SIGKILL the operator at steps of the lifecycle, restart it, check.

Each fault runs `--runs` times against the embedded cluster with the operator as its own process
(bench/grants.py's harness): file requests, SIGKILL the operator at the step, start it again, and
wait for every request to reach its end state. Checked after each run:

* orphans: a managed RoleBinding in `payments` that no Active request names as its grant;
* the audit trail (a file sink and a spool kept across the restarts, as a PersistentVolume would
  keep them): the hash chain verifies (`jitgrant audit verify`'s `verify_chain`), and each request
  has each transition of its lifecycle (requested, approved, issuing, granted, then expired or
  revoked) exactly once. "lost" counts a transition missing, "duplicated" one recorded twice.
  `requested` and `issuing` may legitimately repeat ("repeats" column, not a failure): both are
  written before the status write that marks them done (handlers/reconcile.py: `requested` before
  the first status write, `issuing` is the write-ahead record before the plan goes into status), so
  a kill or a failed write in between makes the next pass write them again. Exact repeats of one
  chained record (a sink delivery retried after the restart) are not counted: readers skip them;
* the worst lag (expiresAt or the revocation -> RoleBinding gone).

Prints a table: fault, runs, orphans, lost records, duplicated, repeats, chain, worst lag.

Not covered yet (issue 16, part 4): 409/429/5xx injection, dropped watches, a dead audit sink, a
hanging target and clock skew.

Run: `make chaos` or `python tests/chaos/run_chaos.py [--runs N] [--only FAULT]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # bench/grants.py's harness

from grants import Bench, OperatorProcess, Watcher, _wait, environment  # type: ignore[import-not-found]
from kubernetes.client import CustomObjectsApi, RbacAuthorizationV1Api

from jitgrant.audit.chain import parse_lines, unique_records, verify_chain
from jitgrant.audit.readers import read_file
from jitgrant.models.vocabulary import REVOKE_ANNOTATION

COUNT = 10
GRANTED = ("requested", "approved", "issuing", "granted")
#: Written before the status write that marks them done: a kill in between repeats them.
MAY_REPEAT = frozenset({"requested", "issuing"})
FAULTS = ["kill while activating", "kill at expiry", "kill while revoking"]


@dataclass
class Outcome:
    orphans: int = 0
    lost: int = 0
    duplicated: int = 0
    repeats: int = 0
    chain_ok: bool = True
    worst: float = 0.0
    problems: list[str] = field(default_factory=list)

    def add(self, other: Outcome) -> None:
        self.orphans += other.orphans
        self.lost += other.lost
        self.duplicated += other.duplicated
        self.repeats += other.repeats
        self.chain_ok = self.chain_ok and other.chain_ok
        self.worst = max(self.worst, other.worst)
        self.problems.extend(other.problems)

    @property
    def ok(self) -> bool:
        return not (self.orphans or self.lost or self.duplicated) and self.chain_ok


class ChaosOperator(OperatorProcess):  # type: ignore[misc]
    """The harness's operator process, with its audit trail in `audit_dir`, kept across restarts."""

    def __init__(self, env: Any, workdir: Path, *, identity: str, audit_dir: Path) -> None:
        super().__init__(env, workdir, identity=identity, leader_elect=False, webhooks=True)
        config = audit_dir / "audit.yaml"
        if not config.exists():
            audit_dir.mkdir(parents=True, exist_ok=True)
            body = {
                "sinks": [{"type": "file", "name": "file", "path": str(audit_dir / "audit.jsonl")}],
                "spoolDir": str(audit_dir / "spool"),
            }
            config.write_text(yaml.safe_dump(body))
        self.args += ["--audit-config", str(config)]

    def start(self) -> ChaosOperator:
        try:
            super().start()
        except RuntimeError:
            # The workdir is removed on the way out: show the log of an operator that did not come up.
            log = self.workdir / f"{self.identity}.log"
            print(log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)", file=sys.stderr)
            self.stop()
            raise
        return self


def audit_check(trail: Path, expected: dict[str, tuple[str, ...]]) -> Outcome:
    """The chain verifies, and each request's transitions appear exactly once (see the docstring)."""
    out = Outcome()
    lines = read_file(trail) if trail.exists() else []
    report = verify_chain(lines)
    if not report.ok:
        out.chain_ok = False
        out.problems += [f"chain: {f.kind} seq {f.seq}: {f.detail}" for f in report.findings]
    records, _, _ = parse_lines(lines)
    seen: dict[str, Counter[str]] = {name: Counter() for name in expected}
    for item in unique_records(records)[0]:
        event = item.raw["event"]
        if event["requestName"] in seen:
            seen[event["requestName"]][event["type"]] += 1
    for name, wanted in expected.items():
        counts = seen[name]
        for transition in wanted:
            n = counts.get(transition, 0)
            if n == 0:
                out.lost += 1
                out.problems.append(f"{name}: no {transition!r} record")
            elif n > 1 and transition in MAY_REPEAT:
                out.repeats += n - 1
            elif n > 1:
                out.duplicated += n - 1
                out.problems.append(f"{name}: {transition!r} recorded {n} times")
    return out


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


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)


def run_fault(env: Any, workdir: Path, bench: Bench, watcher: Watcher, fault: str, index: int) -> Outcome:
    """One run of one fault: orphans, the audit check and the worst lag."""
    audit_dir = workdir / f"audit-{_slug(fault)}-{index}"

    def start(suffix: str) -> ChaosOperator:
        identity = f"chaos-{_slug(fault)}-{index}-{suffix}"
        return ChaosOperator(env, workdir, identity=identity, audit_dir=audit_dir).start()

    operator = start("a")
    names = bench.names(COUNT)
    worst = 0.0
    ends: tuple[str, ...] = ()
    try:
        if fault == "kill while activating":
            bench.file(names, "10m")
            time.sleep(0.3)  # some Active, some in flight
            operator.kill()
            operator = start("b")
            _wait(lambda: all(p == "Active" for p in _phases(env, names).values()), timeout=120)
        elif fault == "kill at expiry":
            ends = ("expired",)
            bench.file(names, "10m")
            _wait(lambda: all(p == "Active" for p in _phases(env, names).values()), timeout=120)
            due_at = datetime.now(UTC).timestamp() + 3
            due = bench.set_expiry(names, lambda _: datetime.fromtimestamp(due_at, UTC))
            time.sleep(max(0.0, due_at - time.time()) + 0.2)
            operator.kill()  # mid-expiry: some bindings gone, some not
            operator = start("b")
            _wait(lambda: all(n in watcher.deleted for n in names), timeout=120)
            worst = max((watcher.deleted.get(n, time.time()) - due[n] for n in names), default=0.0)
            _wait(lambda: all(p == "Expired" for p in _phases(env, names).values()), timeout=60)
        elif fault == "kill while revoking":
            ends = ("revoked",)
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
            _wait(lambda: all(p == "Revoked" for p in _phases(env, names).values()), timeout=60)
        else:
            raise ValueError(f"unknown fault {fault!r}")
        _wait(lambda: orphans(env) == 0, timeout=30)  # the sweep or the lifecycle may still be finishing
        found = orphans(env)
    finally:
        operator.stop()  # a clean stop delivers what is still spooled to the file sink
    out = audit_check(audit_dir / "audit.jsonl", {name: GRANTED + ends for name in names})
    out.orphans, out.worst = found, worst
    return out


HEADER = (
    f"{'fault':<24} {'runs':>4} {'orphans':>7} {'lost records':>12} {'duplicated':>10} "
    f"{'repeats':>7} {'chain':>5} {'worst lag':>9}"
)


def row(fault: str, runs: int, out: Outcome) -> str:
    chain = "ok" if out.chain_ok else "BAD"
    return (
        f"{fault:<24} {runs:>4} {out.orphans:>7} {out.lost:>12} {out.duplicated:>10} "
        f"{out.repeats:>7} {chain:>5} {out.worst:>8.1f}s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--only", action="append", choices=FAULTS, help="run only this fault (repeatable)")
    args = parser.parse_args()
    rows: list[tuple[str, Outcome]] = []
    with environment() as (env, workdir):
        bench = Bench(env, workdir)
        watcher = Watcher(env).start()
        try:
            for fault in args.only or FAULTS:
                total = Outcome()
                for index in range(args.runs):
                    total.add(run_fault(env, workdir, bench, watcher, fault, index))
                rows.append((fault, total))
        finally:
            watcher.stop()
    print(HEADER)
    for fault, total in rows:
        print(row(fault, args.runs, total))
    for fault, total in rows:
        for problem in total.problems[:20]:
            print(f"{fault}: {problem}")
    return 0 if all(total.ok for _, total in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
