"""Faults with nothing lost: kill the operator, refuse its API calls, drop its watches, cut or slow its
audit sink, hang a target cluster, skew a replica's clock.

Each fault runs `--runs` times against the embedded cluster with the operator as its own process
(bench/grants.py's harness), on `COUNT` auto-approved requests:

* kill while activating / at expiry / while revoking: SIGKILL the operator at that step and start
  it again;
* api 409/429/5xx: the embedded API server (embedkube/faults.py, `cluster.faults`) refuses 15% of
  the operator's writes with 429, 500 or 503 and 15% of its updates and patches with 409 (so 15-28%
  of its writes fail) while the requests are filed, activated, revoked (half) and expire (half);
* dropped watches: the same lifecycle while every watch of the operator is cut 2 s after it opened;
* dead audit sink: a webhook sink that must accept the intent to grant (`acceptance: sinks`) is
  down: half the requests are filed then, and must end Failed (AuditUnavailable) with no binding
  ever created; then it comes back and the other half go through the lifecycle;
* slow audit sink: the same webhook sink, required the same way (its timeouts at their defaults),
  answers each delivery after 1-3 s while the requests are filed, activated, revoked (half) and
  expire (half); then it must receive every record;
* hanging target: besides the `COUNT` in-cluster requests going through that lifecycle, 3 requests
  for an EKS cluster (its role and DescribeCluster on moto) whose API server accepts connections
  and never answers, through `wrapped_operator.py` (`jitgrant run --eks` cannot point AWS at moto):
  they must wait with a reason (not Active, not just "Issuing") within 90 s; then the operator is
  SIGKILLed and started again while in-cluster grants fall due, and must listen for webhooks and
  end those grants within 15 s; the hanging requests must end once revoked within 90 s, and the
  operator must still stop within 15 s;
* clock skew: two replicas with leader election, b's wall clock 30 s ahead on even runs and behind
  on odd ones (`wrapped_operator.py` skews the Runtime's and the audit trail's clock; the election
  reads the monotonic clock). a (true clock) grants, is SIGKILLed, b takes over and expires; then b
  grants and expires some, is SIGKILLed, a takes over and expires the rest. Each replica has its
  own audit trail (as each pod has its volume), each chain is verified and the transitions are
  counted across both. A grant ending more than 1 s before its expiresAt (true time) is a problem
  too.
* leader pause: two replicas with leader election, each with its own audit trail; a burst of
  `PAUSE_COUNT` requests is filed and, once a quarter of them are Active, the leader is SIGSTOPped
  (frozen mid-pass, as a long GC or a frozen VM would be) until the standby has taken the Lease over
  and finished every grant; then it is SIGCONTed. The resumed leader must write nothing (its audit
  writes are fenced on the Lease, reactor/fencing.py); a transition the new leader writes again
  (the old one recorded it before the pause, its status write never landed) carries the same
  `transitionId`, so it counts as a repeat, not a duplicate.

Checked after each run:

* orphans: a managed RoleBinding in `payments` that no Active request names as its grant;
* every request reached its end (Active, Expired or Revoked as the fault intends) and, where it
  was granted, ended within 15 s of its expiresAt or revocation ("worst lag");
* the audit trail (a file sink and a spool kept across the restarts, as a PersistentVolume would
  keep them): the hash chain verifies (`jitgrant audit verify`'s `verify_chain`), and each request
  has each transition of its lifecycle (requested, approved, issuing, granted, then expired or
  revoked; failed for one that failed) exactly once. "lost records" counts a transition missing
  (and, for the dead or slow sink, a record the webhook never received), "duplicated" one recorded
  twice. A transition may repeat once after a kill or a leader change ("repeats", not a failure):
  every record is written ahead of the status write that marks its transition done
  (reconcile/driver.py), so an operator killed in between writes it again on its next run rather
  than losing it; a refused write retried by the same process does not repeat it. A repeat is one
  only when it is recognisable: every copy carries the same `transitionId` (which `jitgrant audit
  query` folds), or, for records without one, all copies are in one trail. Exact repeats of one
  chained record (a sink delivery retried after a restart) are not counted: readers skip them.

Prints a table: fault, runs, injected (kills, refused API calls and cut watches: the fault did
happen; for the dead sink, the requests filed while it was down; for the slow one, its slow
deliveries; for the hanging target, the requests filed for it), orphans, lost records,
duplicated, repeats, chain, worst lag; then figures that are not checks (activation and take-over
times, how early or late grants ended, a hanging request's status over time), then each problem
found; exits 1 if any.

Run: `make chaos` or `python tests/chaos/run_chaos.py [--runs N] [--only FAULT]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # bench/grants.py's harness

from grants import (  # type: ignore[import-not-found]
    POLICY,
    Bench,
    OperatorProcess,
    Watcher,
    _request,
    _wait,
    environment,
)
from kubernetes.client import CoordinationV1Api, CustomObjectsApi, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException
from wrapped_operator import CLOCK_SKEW_ENV, EKS_ENV  # type: ignore[import-not-found]

from jitgrant.audit.chain import parse_lines, unique_records, verify_chain
from jitgrant.audit.readers import read_file
from jitgrant.clusters.leader import LEASE_NAME
from jitgrant.models.vocabulary import REVOKE_ANNOTATION, Reason
from jitgrant_testing.aws import REGION, MotoServer, blackhole
from jitgrant_testing.environment import OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, free_port

#: Runs `jitgrant` with a fault it has no setting for (a skewed clock, EKS on moto); see its docstring.
WRAPPER = Path(__file__).resolve().parent / "wrapped_operator.py"

COUNT = 10
GRANTED = ("requested", "approved", "issuing", "granted")
#: Written before the status write that marks them done: a kill in between repeats them.
MAY_REPEAT = frozenset(
    {"requested", "pending", "approved", "denied", "issuing", "granted", "expired", "revoked", "failed"}
)
TERMINAL = frozenset({"Expired", "Revoked", "Denied", "TimedOut", "Failed"})
FAULTS = [
    "kill while activating",
    "kill at expiry",
    "kill while revoking",
    "api 409/429/5xx",
    "dropped watches",
    "dead audit sink",
    "slow audit sink",
    "hanging target",
    "clock skew",
    "leader pause",
]
#: Who the injected API faults are for: the operator's ServiceAccount (its process's kubeconfig).
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}"
#: Of the operator's writes refused while "api 409/429/5xx" runs: 409 on updates and patches (what
#: a stale resourceVersion gets), 429/500/503 on any write; so 15-28% of its writes fail.
API_FAULT_FRACTION = 0.15
WATCH_DROP_EVERY_S = 2.0
#: A grant ends this long after its expiresAt or its revocation at the latest (issue 16's failover goal).
END_BOUND_S = 15.0
#: Each delivery to the slow audit sink takes this long (seconds, uniformly drawn).
SLOW_SINK_S = (1.0, 3.0)
#: Audit settings for the slow sink beyond the defaults (none: to try a longer acceptance timeout).
SLOW_SINK_AUDIT: dict[str, Any] = {}
#: The skewed replica's clock is this far off (+ on even runs, - on odd ones).
CLOCK_SKEW_S = 30.0
#: Requests filed for the hanging target cluster, besides the COUNT in-cluster ones.
HANGING_COUNT = 3
#: How long a request for the hanging target may take to say so, and to end once revoked.
HANGING_WAIT_S = 90.0
#: Requests in the burst the leader is paused in the middle of.
PAUSE_COUNT = 40
#: A grant ending this much before its expiresAt (true time) ended early: expiresAt is whole seconds.
EARLY_TOLERANCE_S = 1.0


@dataclass
class Outcome:
    orphans: int = 0
    lost: int = 0
    duplicated: int = 0
    repeats: int = 0
    chain_ok: bool = True
    worst: float = 0.0
    early: float = 0.0  # the most a grant ended before its expiresAt (true time)
    injected: int = 0  # kills, refused API calls, cut watches: proof the fault happened
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # figures worth showing that are not failures

    def add(self, other: Outcome) -> None:
        self.orphans += other.orphans
        self.lost += other.lost
        self.duplicated += other.duplicated
        self.repeats += other.repeats
        self.chain_ok = self.chain_ok and other.chain_ok
        self.worst = max(self.worst, other.worst)
        self.early = max(self.early, other.early)
        self.injected += other.injected
        self.problems.extend(other.problems)
        self.notes.extend(other.notes)

    @property
    def ok(self) -> bool:
        # Problems besides the counted ones (a grant while the audit sink was down, a late end).
        return not (self.orphans or self.lost or self.duplicated or self.problems) and self.chain_ok


class ChaosOperator(OperatorProcess):  # type: ignore[misc]
    """The harness's operator process, with its audit trail in `audit_dir`, kept across restarts."""

    def __init__(
        self,
        env: Any,
        workdir: Path,
        *,
        identity: str,
        audit_dir: Path,
        audit: dict[str, Any] | None = None,
        leader_elect: bool = False,
        webhooks: bool = True,
        wrapped: dict[str, str] | None = None,
    ) -> None:
        super().__init__(env, workdir, identity=identity, leader_elect=leader_elect, webhooks=webhooks)
        # With `wrapped`: through wrapped_operator.py, these environment variables telling it what to change.
        self.wrapped = wrapped
        self.listened_after = 0.0
        if wrapped is not None:
            self.args[:1] = [sys.executable, str(WRAPPER)]
        config = audit_dir / "audit.yaml"
        if not config.exists():
            audit_dir.mkdir(parents=True, exist_ok=True)
            extra = dict(audit or {})
            body = {
                "sinks": [
                    {"type": "file", "name": "file", "path": str(audit_dir / "audit.jsonl")},
                    *extra.pop("sinks", []),
                ],
                "spoolDir": str(audit_dir / "spool"),
                **extra,
            }
            config.write_text(yaml.safe_dump(body))
        self.args += ["--audit-config", str(config)]

    def start(self, listen_timeout: float = 60.0) -> ChaosOperator:
        """Start it and wait until its webhooks listen (`listened_after` says how long that took)."""
        saved = {key: os.environ.get(key) for key in self.wrapped or {}}
        os.environ.update(self.wrapped or {})  # the harness's start() passes os.environ to the child
        started = time.monotonic()
        try:
            try:
                super().start()  # waits up to 60 s
            except RuntimeError:
                alive = self.proc is not None and self.proc.poll() is None
                if not (alive and _wait(lambda: _listens(self.port), timeout=listen_timeout - 60)):
                    raise
            self.listened_after = time.monotonic() - started
        except RuntimeError:
            # The workdir is removed on the way out: show the log of an operator that did not come up.
            log = self.workdir / f"{self.identity}.log"
            print(log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)", file=sys.stderr)
            self.stop()
            raise
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return self


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def audit_check(trails: Path | list[Path], expected: dict[str, tuple[str, ...]]) -> Outcome:
    """Each chain verifies, and each request's transitions appear exactly once across them (see the
    docstring). Several trails: one per replica, each with its own chain, as each pod has its own."""
    out = Outcome()
    seen: dict[str, Counter[str]] = {name: Counter() for name in expected}
    # Per request and transition: the transitionId of each copy, and the trails holding one.
    ids: dict[tuple[str, str], set[str | None]] = {}
    where: dict[tuple[str, str], set[int]] = {}
    for number, trail in enumerate([trails] if isinstance(trails, Path) else trails):
        lines = read_file(trail) if trail.exists() else []
        report = verify_chain(lines)
        if not report.ok:
            out.chain_ok = False
            out.problems += [
                f"chain {trail.parent.name}: {f.kind} seq {f.seq}: {f.detail}" for f in report.findings
            ]
        records, _, _ = parse_lines(lines)
        for item in unique_records(records)[0]:
            event = item.raw["event"]
            if event["requestName"] in seen:
                seen[event["requestName"]][event["type"]] += 1
                key = (event["requestName"], event["type"])
                ids.setdefault(key, set()).add(event.get("transitionId"))
                where.setdefault(key, set()).add(number)
    for name, wanted in expected.items():
        counts = seen[name]
        for transition in wanted:
            n = counts.get(transition, 0)
            if n == 0:
                out.lost += 1
                out.problems.append(f"{name}: no {transition!r} record")
            elif n > 1 and _recognisable(ids[(name, transition)], where[(name, transition)], transition):
                out.repeats += n - 1
            elif n > 1:
                out.duplicated += n - 1
                out.problems.append(f"{name}: {transition!r} recorded {n} times")
    return out


def _recognisable(ids: set[str | None], trails: set[int], transition: str) -> bool:
    """A transition recorded more than once is a repeat an auditor can tell from a second one: all
    copies carry one transitionId, or (records from before it existed) one trail holds them all."""
    if len(ids) == 1 and None not in ids:
        return True
    return transition in MAY_REPEAT and ids == {None} and len(trails) == 1


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


def settle(
    env: Any,
    names: list[str],
    want: str | dict[str, str],
    *,
    timeout: float = 120,
    wrong: frozenset[str] = frozenset(),
) -> list[str]:
    """Wait until each request is in its wanted phase or has ended otherwise (or reached a `wrong`
    phase, which it will not leave in time); say which are not in their wanted phase."""
    wanted = want if isinstance(want, dict) else dict.fromkeys(names, want)

    def settled() -> bool:
        return all(p == wanted[n] or p in TERMINAL | wrong for n, p in _phases(env, names).items())

    _wait(settled, timeout=timeout)
    current = _requests(env)
    problems = []
    for name in names:
        status = (current.get(name) or {}).get("status") or {}
        if status.get("phase") != wanted[name]:
            problems.append(
                f"{name}: {status.get('phase')} ({status.get('reason')}: {status.get('message')}), "
                f"not {wanted[name]}"
            )
    return problems


#: What the operator's webhooks answer when their own API calls are refused (fail closed): the
#: caller, like kubectl's user, tries again.
TRANSIENT = frozenset({429, 500, 503})


def _again(action: Callable[[], object], *, attempts: int = 50) -> None:
    for attempt in range(attempts):
        try:
            action()
            return
        except ApiException as exc:
            if exc.status not in TRANSIENT or attempt == attempts - 1:
                raise
            time.sleep(0.2)


def file_all(env: Any, bench: Bench, names: list[str]) -> None:
    """File every request, again for those the webhooks refused for a transient reason."""

    def missing() -> None:
        if todo := [n for n in names if n not in _requests(env)]:
            bench.file(todo, "10m")

    _again(missing)


def revoke(env: Any, name: str) -> None:
    _again(lambda: env.annotate_request("agents", name, {REVOKE_ANNOTATION: "INC-1 chaos"}, client=env.admin))


def _gone(watcher: Watcher, names: list[str]) -> None:
    _wait(lambda: all(n in watcher.deleted for n in names), timeout=120)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)


class AuditReceiver:
    """The webhook sink's far end, on a fixed port: down (refusing connections) until `up()`; with
    `delay`, each delivery is answered after a time drawn between its two bounds."""

    def __init__(self, delay: tuple[float, float] | None = None) -> None:
        self.port = free_port()
        self.lines: list[bytes] = []
        self.delay = delay
        self.deliveries = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def up(self) -> None:
        lines, delay, receiver = self.lines, self.delay, self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if delay is not None:
                    time.sleep(random.uniform(*delay))
                receiver.deliveries += 1
                lines.extend(json.dumps(entry).encode() for entry in body["entries"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def down(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = self._thread = None


@contextmanager
def api_faults(env: Any, fault: str | None) -> Iterator[None]:
    """The embedded API server refuses the operator's writes, or drops its watches, meanwhile."""
    faults = env.cluster.faults
    if fault == "api 409/429/5xx":
        faults.fail(user=OPERATOR_USER, status=409, fraction=API_FAULT_FRACTION, verbs=["update", "patch"])
        faults.fail(user=OPERATOR_USER, status=(429, 500, 503), fraction=API_FAULT_FRACTION)
    elif fault == "dropped watches":
        faults.drop_watches(user=OPERATOR_USER, every=WATCH_DROP_EVERY_S)
    try:
        yield
    finally:
        faults.clear()


def lifecycle(
    env: Any, bench: Bench, watcher: Watcher, names: list[str], fault: str | None = None
) -> tuple[dict[str, tuple[str, ...]], float, list[str]]:
    """File, activate, then revoke the first half and let the rest expire in 3 s; wait for every
    end, with `fault` on throughout but for the moment the test moves expiresAt (it writes as the
    operator, so its own patches would be refused too). Returns the transitions each request must
    have, the worst lag from expiresAt or the revocation to the RoleBinding gone, and problems."""
    with api_faults(env, fault):
        file_all(env, bench, names)
        problems = settle(env, names, "Active")
    active = [n for n in names if _phases(env, [n])[n] == "Active"]
    revoked, expiring = active[: len(active) // 2], active[len(active) // 2 :]
    due_at = datetime.now(UTC).timestamp() + 3
    due = bench.set_expiry(expiring, lambda _: datetime.fromtimestamp(due_at, UTC))
    ends = {n: "Revoked" for n in revoked} | {n: "Expired" for n in expiring}
    with api_faults(env, fault):
        for name in revoked:
            due[name] = time.time()  # the first attempt: a refused one counts into the lag
            revoke(env, name)
        _gone(watcher, active)
        problems += settle(env, active, ends)
    worst = max((watcher.deleted.get(n, time.time()) - due[n] for n in active), default=0.0)
    expected: dict[str, tuple[str, ...]] = {n: (*GRANTED, ends[n].lower()) for n in active}
    # A request that failed is still checked: its trail must hold what happened up to the failure.
    expected |= {n: (*GRANTED[:3], "failed") for n in names if n not in ends}
    return expected, worst, problems


def _undelivered(audit_dir: Path, receiver: AuditReceiver) -> set[int]:
    """Sequence numbers in the file sink that the webhook sink has not received."""
    trail = audit_dir / "audit.jsonl"
    stored = {json.loads(line)["seq"] for line in trail.read_bytes().splitlines() if line.strip()}
    return stored - {json.loads(line)["seq"] for line in list(receiver.lines)}


def _lag(due: dict[str, float], watcher: Watcher, out: Outcome, what: str) -> None:
    """The worst lag and the most any grant ended early, from expiresAt to the RoleBinding gone."""
    lags = [watcher.deleted.get(name, time.time()) - at for name, at in due.items()]
    out.worst = max([out.worst, *lags])
    out.early = max([out.early, *(-lag for lag in lags)])
    out.notes.append(f"{what}: grants ended {min(lags):+.1f}s to {max(lags):+.1f}s from their expiresAt")
    if early := [lag for lag in lags if -lag > EARLY_TOLERANCE_S]:
        out.problems.append(
            f"{what}: {len(early)} grant(s) ended up to {-min(early):.1f}s before their expiresAt"
        )


def _leader(env: Any) -> str | None:
    try:
        lease = CoordinationV1Api(env.admin).read_namespaced_lease(LEASE_NAME, OPERATOR_NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return lease.spec.holder_identity if lease.spec else None


def _statuses(env: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    current = _requests(env)
    return {n: ((current.get(n) or {}).get("status") or {}) for n in names}


def _stuck(status: dict[str, Any]) -> bool:
    """Not granted, and saying why: a reason other than the one of a grant in progress."""
    return status.get("phase") != "Active" and status.get("reason") not in (None, Reason.ISSUING)


class Timeline:
    """Each change of one request's phase and reason, in seconds from `since`: the evidence."""

    def __init__(self, env: Any, name: str, since: float) -> None:
        self.env, self.name, self.since = env, name, since
        self.changes: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> Timeline:
        self._thread.start()
        return self

    def _loop(self) -> None:
        last = None
        while not self._stop.wait(0.5):
            status = _statuses(self.env, [self.name])[self.name]
            now = (status.get("phase"), status.get("reason"))
            if now != last:
                self.changes.append(f"{time.time() - self.since:.0f}s {now[0]}/{now[1]}")
                last = now

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


HANGING_CLUSTER = "hanging"
HANGING_POLICY = "chaos-hanging"


def _hanging_policy(role_arn: str) -> dict[str, Any]:
    """bench-auto's grant, in an EKS cluster whose API server accepts connections and never answers."""
    spec = dict(POLICY["spec"])
    spec["target"] = {
        "type": "EKS",
        "eks": {"clusterName": HANGING_CLUSTER, "region": REGION, "roleArn": role_arn},
    }
    return {**POLICY, "metadata": {"name": HANGING_POLICY}, "spec": spec}


def run_hanging_target(env: Any, workdir: Path, bench: Bench, watcher: Watcher, index: int) -> Outcome:
    """Requests for an EKS target whose API server never answers, while the in-cluster ones go
    through their lifecycle: those end in time, the hanging ones wait with a reason; the operator
    is restarted meanwhile and in-cluster grants due then end in time; the hanging ones end when
    revoked; the operator still stops."""
    audit_dir = workdir / f"audit-hanging-target-{index}"
    moto = MotoServer()
    sock, silent = blackhole()
    out = Outcome()
    operator: ChaosOperator | None = None
    try:
        role_arn = moto.create_target_role("jitgrant-target")
        moto.create_eks_cluster(HANGING_CLUSTER)
        config = workdir / f"eks-{index}.json"
        config.write_text(json.dumps({"moto": moto.url, "overrides": {HANGING_CLUSTER: silent}}))
        options: dict[str, Any] = {
            "env": env,
            "workdir": workdir,
            "identity": f"chaos-hanging-target-{index}",
            "audit_dir": audit_dir,
            "wrapped": {EKS_ENV: str(config)},
        }
        operator = ChaosOperator(**options).start()
        env.apply([_hanging_policy(role_arn)])
        hanging = [f"h{index}-{n}" for n in range(HANGING_COUNT)]
        for n, name in enumerate(hanging):
            body = _request(name, "10m")
            body["spec"]["policy"] = HANGING_POLICY
            env.create_request(body, client=bench.agents[n % len(bench.agents)])
        filed = time.time()
        timeline = Timeline(env, hanging[0], filed).start()
        try:
            # 1. The in-cluster lifecycle meanwhile.
            names = bench.names(COUNT)
            expected, worst, problems = lifecycle(env, bench, watcher, names)
            activated = [watcher.active[n] - filed for n in names if n in watcher.active]
            out.notes.append(
                f"in-cluster: slowest activation {max(activated, default=0.0):.1f}s after filing"
            )
            out.problems += problems
            out.worst = worst
            # 2. The hanging ones wait, with a reason other than the in-progress one.
            _wait(lambda: all(_stuck(s) for s in _statuses(env, hanging).values()), timeout=HANGING_WAIT_S)
            for name, status in _statuses(env, hanging).items():
                if not _stuck(status):
                    out.problems.append(
                        f"{name}: {status.get('phase')} ({status.get('reason')}: {status.get('message')}) "
                        f"{time.time() - filed:.0f}s after filing, with its target hanging"
                    )
            # 3. The operator restarted (a rollout, an OOM kill) while the target still hangs: its
            # webhooks come back, and in-cluster grants due meanwhile end within the bound.
            restarted = bench.names(COUNT // 2)
            file_all(env, bench, restarted)
            out.problems += settle(env, restarted, "Active")
            due = bench.set_expiry(restarted, lambda _: datetime.fromtimestamp(time.time() + 3, UTC))
            expected |= {n: (*GRANTED, "expired") for n in restarted}
            operator.kill()
            operator = ChaosOperator(**options).start(listen_timeout=HANGING_WAIT_S * 2)
            out.notes.append(f"restarted: webhooks listening {operator.listened_after:.1f}s after the start")
            if operator.listened_after > END_BOUND_S:
                out.problems.append(
                    f"restarted with a target hanging, its webhooks listened {operator.listened_after:.1f}s "
                    "after the start (they fail closed: nothing could be filed or revoked meanwhile)"
                )
            _wait(lambda: all(n in watcher.deleted for n in restarted), timeout=HANGING_WAIT_S * 2)
            _lag(due, watcher, out, "restarted with a target hanging")
            # 4. Withdrawn, the hanging ones end although the target still does not answer.
            asked = time.time()
            for name in hanging:
                revoke(env, name)
            out.problems += settle(env, hanging, "Revoked", timeout=HANGING_WAIT_S)
            took = time.time() - asked
            out.notes.append(
                f"hanging target: revoked {asked - filed:.0f}s after filing, ended {took:.0f}s later"
            )
            expected |= {n: ("requested", "approved", "revoked") for n in hanging}
        finally:
            timeline.stop()
        out.notes.append(f"hanging target: {hanging[0]}'s status over time: " + "; ".join(timeline.changes))
        _wait(lambda: orphans(env) == 0, timeout=30)
        out.orphans = orphans(env)
        # Gone before the next run, whose operator would meet the policy's target at its start.
        CustomObjectsApi(env.admin).delete_cluster_custom_object(
            "jitgrant.dev", "v1alpha1", "grantpolicies", HANGING_POLICY
        )
    finally:
        if operator is not None:
            stopping = time.monotonic()
            operator.stop()
            took = time.monotonic() - stopping
            out.notes.append(f"the operator stopped in {took:.1f}s")
            if took > 15:
                out.problems.append(f"the operator took {took:.1f}s to stop with its target hanging")
        sock.close()
        moto.stop()
    checked = audit_check(audit_dir / "audit.jsonl", expected)
    checked.add(out)
    checked.injected = HANGING_COUNT + 1  # requests for the hanging target, and the restart
    if checked.worst > END_BOUND_S:
        checked.problems.append(f"a grant ended {checked.worst:.1f}s after its expiry or revocation")
    return checked


def run_clock_skew(env: Any, workdir: Path, bench: Bench, watcher: Watcher, index: int) -> Outcome:
    """Two replicas with leader election, B's clock off by CLOCK_SKEW_S (+ on even runs, - on odd):
    A leads and is killed, B takes over and expires; then B leads and is killed, A takes over."""
    skew = CLOCK_SKEW_S if index % 2 == 0 else -CLOCK_SKEW_S
    tag = f"chaos-clock-skew-{index}"
    dirs = [workdir / f"audit-{tag}-a", workdir / f"audit-{tag}-b"]

    def replica(which: str) -> ChaosOperator:
        if which == "a":  # true clock; the webhooks' port, so filing works while it runs
            return ChaosOperator(env, workdir, identity=f"{tag}-a", audit_dir=dirs[0], leader_elect=True)
        return ChaosOperator(
            env,
            workdir,
            identity=f"{tag}-b",
            audit_dir=dirs[1],
            leader_elect=True,
            webhooks=False,
            wrapped={CLOCK_SKEW_ENV: str(skew)},
        )

    out = Outcome()
    out.notes.append(f"run {index}: replica b's clock {skew:+.0f}s")
    a = replica("a").start()
    b: ChaosOperator | None = None
    names = bench.names(COUNT)
    first, second = names[: COUNT // 2], names[COUNT // 2 :]
    try:
        if not _wait(lambda: _leader(env) == a.identity, timeout=60):
            raise RuntimeError(f"replica a did not lead (the Lease names {_leader(env)})")
        b = replica("b").start()
        # 1. A (true clock) leads and grants; killed, B (skewed) takes over and expires them.
        file_all(env, bench, first)
        out.problems += settle(env, first, "Active")
        due = bench.set_expiry(first, lambda _: datetime.fromtimestamp(time.time() + 20, UTC))
        killed = time.time()
        a.kill()
        out.injected += 1
        _wait(lambda: _leader(env) == b.identity if b else False, timeout=60)
        out.notes.append(f"b took over {time.time() - killed:.1f}s after a was killed")
        _gone(watcher, first)
        _lag(due, watcher, out, f"b ({skew:+.0f}s) took over from a killed")
        # 2. B (skewed) leads and grants (A back as the standby that serves the webhooks); B expires
        # some of them, then is killed and A takes over and expires the rest.
        a = replica("a").start()
        file_all(env, bench, second)
        out.problems += settle(env, second, "Active")
        soon, later = second[: len(second) // 2], second[len(second) // 2 :]
        now = time.time()
        due = bench.set_expiry(soon, lambda _: datetime.fromtimestamp(now + 8, UTC))
        due |= bench.set_expiry(later, lambda _: datetime.fromtimestamp(now + 30, UTC))
        _wait(lambda: all(n in watcher.deleted for n in soon), timeout=60)
        _lag({n: due[n] for n in soon}, watcher, out, f"b ({skew:+.0f}s) leading")
        killed = time.time()
        b.kill()
        out.injected += 1
        _wait(lambda: _leader(env) == a.identity, timeout=60)
        out.notes.append(f"a took over {time.time() - killed:.1f}s after b was killed")
        _gone(watcher, later)
        _lag({n: due[n] for n in later}, watcher, out, "a took over from b killed")
        out.problems += settle(env, names, "Expired", timeout=60)
        _wait(lambda: orphans(env) == 0, timeout=30)
        out.orphans = orphans(env)
    finally:
        a.stop()
        if b is not None:
            b.stop()
    checked = audit_check([d / "audit.jsonl" for d in dirs], {n: (*GRANTED, "expired") for n in names})
    checked.add(out)
    if checked.worst > END_BOUND_S:
        checked.problems.append(f"a grant ended {checked.worst:.1f}s after its expiresAt")
    return checked


def run_leader_pause(env: Any, workdir: Path, bench: Bench, watcher: Watcher, index: int) -> Outcome:
    """Replica a leads and is SIGSTOPped mid-burst until b has taken over and finished every grant,
    then SIGCONTed; each replica has its own trail. Also counts, as a figure, the records a wrote
    after it was paused (none when its audit writes are fenced)."""
    tag = f"chaos-leader-pause-{index}"
    dirs = [workdir / f"audit-{tag}-a", workdir / f"audit-{tag}-b"]
    out = Outcome()
    a = ChaosOperator(env, workdir, identity=f"{tag}-a", audit_dir=dirs[0], leader_elect=True, webhooks=False)
    a.start()
    b: ChaosOperator | None = None
    names = bench.names(PAUSE_COUNT)
    try:
        if not _wait(lambda: _leader(env) == a.identity, timeout=60):
            raise RuntimeError(f"replica a did not lead (the Lease names {_leader(env)})")
        b = ChaosOperator(env, workdir, identity=f"{tag}-b", audit_dir=dirs[1], leader_elect=True).start()
        filing = threading.Thread(target=file_all, args=(env, bench, names), daemon=True)
        filing.start()
        _wait(lambda: sum(n in watcher.active for n in names) >= len(names) // 4, timeout=60)
        assert a.proc is not None
        a.proc.send_signal(signal.SIGSTOP)
        paused = time.time()
        out.injected += 1
        try:
            if not _wait(lambda: b is not None and _leader(env) == b.identity, timeout=60):
                raise RuntimeError(f"replica b did not take over (the Lease names {_leader(env)})")
            out.notes.append(f"b took over {time.time() - paused:.1f}s after a was paused")
            filing.join(timeout=120)
            out.problems += settle(env, names, "Active", timeout=90)
        finally:
            a.proc.send_signal(signal.SIGCONT)
        resumed = datetime.now(UTC)
        time.sleep(3)  # its passes in flight run on, into the fence
        out.problems += settle(env, names, "Active")
        _wait(lambda: orphans(env) == 0, timeout=30)
        out.orphans = orphans(env)
    finally:
        a.stop()
        if b is not None:
            b.stop()
    trail_a = dirs[0] / "audit.jsonl"
    after = [
        item.raw["event"]
        for item in parse_lines(read_file(trail_a) if trail_a.exists() else [])[0]
        if item.raw["event"]["time"] >= resumed.strftime("%Y-%m-%dT%H:%M:%SZ")
        and item.raw["event"]["type"] != "granted"  # its time is the planned activation, not now
    ]
    out.notes.append(f"records a wrote after it resumed: {len(after)}")
    if after:
        out.problems.append(f"a wrote {len(after)} record(s) after losing the Lease: {after[0]['type']}")
    checked = audit_check([d / "audit.jsonl" for d in dirs], {n: GRANTED for n in names})
    checked.add(out)
    return checked


def run_fault(env: Any, workdir: Path, bench: Bench, watcher: Watcher, fault: str, index: int) -> Outcome:
    """One run of one fault: orphans, the audit check and the worst lag."""
    if fault == "leader pause":
        return run_leader_pause(env, workdir, bench, watcher, index)
    if fault == "hanging target":
        return run_hanging_target(env, workdir, bench, watcher, index)
    if fault == "clock skew":
        return run_clock_skew(env, workdir, bench, watcher, index)
    audit_dir = workdir / f"audit-{_slug(fault)}-{index}"
    receiver = None
    audit: dict[str, Any] | None = None
    if fault == "slow audit sink":
        receiver = AuditReceiver(delay=SLOW_SINK_S)
        receiver.up()
        # Slow, not failing: the sink's own timeouts are the defaults (10 s a delivery, 5 s for the
        # acceptance of an intent to grant), and each grant still waits for the sink to accept it.
        audit = {
            "sinks": [{"type": "webhook", "name": "siem", "url": receiver.url}],
            "acceptance": "sinks",
            **SLOW_SINK_AUDIT,
        }
    elif fault == "dead audit sink":
        receiver = AuditReceiver()
        # The webhook must accept each record before a grant is issued (acceptance: sinks).
        audit = {
            "sinks": [{"type": "webhook", "name": "siem", "url": receiver.url, "timeoutSeconds": 1}],
            "acceptance": "sinks",
            "acceptanceTimeoutSeconds": 2,
            "retryMaxSeconds": 1,
        }

    def start(suffix: str) -> ChaosOperator:
        identity = f"chaos-{_slug(fault)}-{index}-{suffix}"
        return ChaosOperator(env, workdir, identity=identity, audit_dir=audit_dir, audit=audit).start()

    injected_before = sum(env.cluster.faults.injected.values())
    kills = 0
    operator = start("a")
    names = bench.names(COUNT)
    worst = 0.0
    problems: list[str] = []
    notes: list[str] = []
    expected: dict[str, tuple[str, ...]] = {}
    try:
        if fault == "kill while activating":
            expected = {name: GRANTED for name in names}
            bench.file(names, "10m")
            time.sleep(0.3)  # some Active, some in flight
            operator.kill()
            kills += 1
            operator = start("b")
            problems += settle(env, names, "Active")
        elif fault == "kill at expiry":
            expected = {name: (*GRANTED, "expired") for name in names}
            bench.file(names, "10m")
            problems += settle(env, names, "Active")
            due_at = datetime.now(UTC).timestamp() + 3
            due = bench.set_expiry(names, lambda _: datetime.fromtimestamp(due_at, UTC))
            time.sleep(max(0.0, due_at - time.time()) + 0.2)
            operator.kill()  # mid-expiry: some bindings gone, some not
            kills += 1
            operator = start("b")
            _gone(watcher, names)
            worst = max((watcher.deleted.get(n, time.time()) - due[n] for n in names), default=0.0)
            problems += settle(env, names, "Expired", timeout=60)
        elif fault == "kill while revoking":
            expected = {name: (*GRANTED, "revoked") for name in names}
            bench.file(names, "10m")
            problems += settle(env, names, "Active")
            asked = time.time()
            for name in names:
                env.annotate_request("agents", name, {REVOKE_ANNOTATION: "INC-1 chaos"}, client=env.admin)
            time.sleep(0.2)
            operator.kill()
            kills += 1
            operator = start("b")
            _gone(watcher, names)
            worst = max((watcher.deleted.get(n, time.time()) - asked for n in names), default=0.0)
            problems += settle(env, names, "Revoked", timeout=60)
        elif fault in ("api 409/429/5xx", "dropped watches"):
            expected, worst, more_problems = lifecycle(env, bench, watcher, names, fault)
            problems += more_problems
        elif fault == "dead audit sink" and receiver is not None:
            dead, live = names[: len(names) // 2], names[len(names) // 2 :]
            bench.file(dead, "10m")
            # Fail closed: nothing granted while the sink cannot accept the intent to grant.
            kills += len(dead)  # requests that met the dead sink (counted as "injected")
            problems += settle(env, dead, "Failed", wrong=frozenset({"Active"}))
            current = _requests(env)
            problems += [
                f"{n}: {current[n]['status'].get('reason')} while the audit sink was down"
                for n in dead
                if current[n]["status"].get("reason") != Reason.AUDIT_UNAVAILABLE
            ]
            problems += [
                f"{n}: a RoleBinding was created while the audit sink was down"
                for n in dead
                if n in watcher.added
            ]
            receiver.up()
            expected = {n: ("requested", "approved", "issuing", "failed") for n in dead}
            more, worst, more_problems = lifecycle(env, bench, watcher, live)
            expected |= more
            problems += more_problems
        elif fault == "slow audit sink" and receiver is not None:
            started = time.time()
            expected, worst, more_problems = lifecycle(env, bench, watcher, names)
            problems += more_problems
            activated = [watcher.active[n] - started for n in names if n in watcher.active]
            notes.append(f"slowest activation {max(activated, default=float('nan')):.1f}s after filing")
            # Everything written reaches the slow sink in the end: wait for it before the stop.
            caught_up = time.time()
            _wait(lambda: not _undelivered(audit_dir, receiver), timeout=120)
            notes.append(
                f"{receiver.deliveries} deliveries; the sink had every record {time.time() - caught_up:.1f}s "
                "after the last grant ended"
            )
            kills += receiver.deliveries  # slow deliveries (counted as "injected")
        else:
            raise ValueError(f"unknown fault {fault!r}")
        _wait(lambda: orphans(env) == 0, timeout=30)  # the sweep or the lifecycle may still be finishing
        found = orphans(env)
    finally:
        operator.stop()  # a clean stop delivers what is still spooled to the sinks
        if receiver is not None:
            receiver.down()
    out = audit_check(audit_dir / "audit.jsonl", expected)
    if receiver is not None:
        # The sink that was down (or slow) must have every record in the end: none lost there either.
        missing = _undelivered(audit_dir, receiver)
        out.lost += len(missing)
        if missing:
            out.problems.append(f"the webhook sink never got seq {sorted(missing)[:10]}")
    out.notes += notes
    out.orphans, out.worst = found, worst
    out.injected = kills + sum(env.cluster.faults.injected.values()) - injected_before
    out.problems += problems
    if out.worst > END_BOUND_S:
        out.problems.append(f"a grant ended {out.worst:.1f}s after its expiry or revocation")
    return out


HEADER = (
    f"{'fault':<24} {'runs':>4} {'injected':>8} {'orphans':>7} {'lost records':>12} {'duplicated':>10} "
    f"{'repeats':>7} {'chain':>5} {'worst lag':>9}"
)


def row(fault: str, runs: int, out: Outcome) -> str:
    chain = "ok" if out.chain_ok else "BAD"
    return (
        f"{fault:<24} {runs:>4} {out.injected:>8} {out.orphans:>7} {out.lost:>12} {out.duplicated:>10} "
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
        for note in total.notes:
            print(f"{fault}: {note}")
    for fault, total in rows:
        for problem in total.problems[:20]:
            print(f"{fault}: {problem}")
    return 0 if all(total.ok for _, total in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
