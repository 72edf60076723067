"""A fleet of EKS target clusters: one operator, N stand-in clusters, each figure next to one cluster's.

Every target is an embedded API server (operator/embedkube) with its own CA that authenticates the
operator's EKS tokens (jitgrant_testing.aws: moto stands in for STS and EKS, PresignedSTS for the
token check), reached through one TLS-terminating proxy (jitgrant_testing.hangproxy) that can make
a cluster go dark before TLS, or complete TLS and then stall. The operator runs as its own process
(`jitgrant run --eks`, with its EKS client pointed at moto and at the stand-ins), so its RSS and CPU
are its own.

Figures, each next to the same measured in the same run on one cluster (the floor):
- start-up (process start -> webhooks listening), RSS and CPU at rest, calls per target per minute at
  rest (from each target's audit log);
- grant latency (create -> Active, as a watch sees it) and expiry lag (expiresAt -> the target's
  audit log records the RoleBinding's DELETE) for the same number of grants on one cluster and over
  the fleet;
- then, over `--dark-of` clusters: the healthy figure, and the same with `--dark` of them dark
  (`dark`: no TLS handshake; `stall`: TLS completes, then silence) while their own grants fall due:
  the healthy clusters' new grants and expiries, as ratios of the healthy figure.

Run: `make bench-fleet` (50 clusters, 20 of them dark) or `python bench/fleet.py [--quick | --full]
[--json FILE]`; `--full` is 100 clusters. Prints a table; asserts nothing (tests/bench runs --quick).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from kubernetes import watch
from kubernetes.client import CustomObjectsApi

from jitgrant.models.vocabulary import parse_time
from jitgrant_testing.aws import OPERATOR_KEY_ID, OPERATOR_SECRET, AWSStandIns, ClusterSpec
from jitgrant_testing.environment import (
    EXAMPLES,
    OPERATOR_NAMESPACE,
    OPERATOR_SERVICE_ACCOUNT,
    Environment,
    free_port,
    load_manifests,
)
from jitgrant_testing.hangproxy import Mode

GROUP, VERSION = "jitgrant.dev", "v1alpha1"
NS = "agents"
AGENT = "fleet-agent"
THREADS = 8  # clients filing requests at once
SOLO = "solo"


@dataclass(frozen=True)
class Sizes:
    clusters: int
    per_cluster: int  # grants per cluster in each batch
    dark_of: int  # the clusters the dark scenarios run over
    dark: int  # how many of those go dark
    rest_s: float  # the at-rest window (RSS, CPU, calls per target)
    sweep_s: int  # the operator's --sweep-interval
    duration_s: int  # the first batch's grants' duration: they expire while the dark are dark
    settle_s: float = 150.0  # how long the dark clusters' grants may take to end once they are back


QUICK = Sizes(clusters=3, per_cluster=1, dark_of=3, dark=1, rest_s=2.0, sweep_s=3, duration_s=6, settle_s=10)
DEFAULT = Sizes(clusters=50, per_cluster=2, dark_of=50, dark=20, rest_s=20.0, sweep_s=10, duration_s=25)
FULL = Sizes(clusters=100, per_cluster=2, dark_of=50, dark=20, rest_s=30.0, sweep_s=10, duration_s=25)


def _phase(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")


def _dist(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": _quantile(values, 0.5),
        "p99": _quantile(values, 0.99),
        "max": max(values) if values else float("nan"),
    }


def _policy(name: str, target: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GrantPolicy",
        "metadata": {"name": name},
        "spec": {
            "requesters": {"serviceAccounts": [{"namespace": NS, "name": AGENT}]},
            "target": target,
            "namespaces": ["payments"],
            "grants": [{"clusterRole": "jit-restart-checkout"}],
            "maxDuration": "1h",
            "defaultDuration": "30m",
            "approval": {"required": False},
            "limits": {"oneOpenPerScope": False},  # one agent files them all: not the guardrail's bench
        },
    }


def _request(name: str, policy: str, duration_s: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AccessRequest",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "policy": policy,
            "namespace": "payments",
            "clusterRole": "jit-restart-checkout",
            "duration": f"{duration_s}s",
            "justification": f"INC-1 {name}",
        },
    }


# ---- the operator as a process --------------------------------------------------------------------


def operator_main(config_file: str, argv: list[str]) -> int:
    """The child: `jitgrant run` itself, its EKS client pointed at moto and at the stand-ins (what
    `endpoint_overrides` does for the tests) instead of AWS."""
    import boto3

    from jitgrant.cli.main import main
    from jitgrant.clusters.eks import EKSAccess, RegionEndpoints
    from jitgrant.operator import runner

    config = json.loads(Path(config_file).read_text())
    moto = RegionEndpoints(sts=config["moto"], eks=config["moto"])
    session = boto3.Session(
        aws_access_key_id=OPERATOR_KEY_ID, aws_secret_access_key=OPERATOR_SECRET, region_name="eu-west-1"
    )
    overrides = {arn: (url, ca.encode()) for arn, (url, ca) in config["overrides"].items()}
    runner.EKSAccess = functools.partial(  # type: ignore[misc]
        EKSAccess, base_session=session, default_endpoints=moto, endpoint_overrides=overrides
    )
    return main(["run", *argv])


class OperatorProcess:
    def __init__(
        self, env: Environment, aws: AWSStandIns, workdir: Path, sizes: Sizes, log_level: str = "warning"
    ) -> None:
        self.workdir = workdir
        kubeconfig = workdir / "operator.kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(env._operator_kubeconfig()))
        kubeconfig.chmod(0o600)
        key = workdir / "receipt.key"
        key.write_bytes(env.receipt_key)
        key.chmod(0o600)
        overrides = {}
        for spec in aws.clusters:
            proxied = aws.hang.clusters[aws.key_of(spec)] if aws.hang is not None else None
            assert proxied is not None
            overrides[spec.arn] = (proxied.url, proxied.ca_pem.decode())
        config = workdir / "eks.json"
        config.write_text(json.dumps({"moto": aws.moto.url, "overrides": overrides}))
        webhook = env._webhook
        self.port = webhook.port
        self.metrics_port = free_port()
        self.args = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--operator-process",
            str(config),
            "--kubeconfig",
            str(kubeconfig),
            "--namespace-of-operator",
            OPERATOR_NAMESPACE,
            "--instance",
            "fleet",
            "--webhook-port",
            str(webhook.port),
            "--webhook-cert",
            str(webhook.certfile),
            "--webhook-key",
            str(webhook.keyfile),
            "--receipt-key-file",
            str(key),
            "--eks",
            "--sweep-interval",
            str(sizes.sweep_s),
            "--metrics-port",
            str(self.metrics_port),
            "--log-level",
            log_level,
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_s = float("nan")

    def start(self) -> OperatorProcess:
        env = dict(os.environ, OPERATOR_SERVICE_ACCOUNT=OPERATOR_SERVICE_ACCOUNT, TMPDIR=str(self.workdir))
        with open(self.workdir / "operator.log", "ab") as log:
            began = time.monotonic()
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=log, env=env)  # noqa: S603
        deadline = began + 120
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    self.started_s = time.monotonic() - began
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"operator exited:\n{self.log_tail()}") from None
                time.sleep(0.05)
        raise RuntimeError("the operator's webhook server did not listen")

    def log_tail(self, chars: int = 3000) -> str:
        return (self.workdir / "operator.log").read_text(errors="replace")[-chars:]

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_s(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def circuits(self) -> dict[str, int]:
        """`jitgrant_target_circuit_state` by state (code before issue 30 §3 has none: empty)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return {}
        counts = {"closed": 0, "half-open": 0, "open": 0}
        names = {0: "closed", 1: "half-open", 2: "open"}
        for line in text.splitlines():
            if line.startswith("jitgrant_target_circuit_state{"):
                counts[names.get(int(float(line.rsplit(" ", 1)[1])), "closed")] += 1
        return counts

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# ---- watching, filing, reading the targets' audit logs ----------------------------------------------


class Watcher:
    """Every AccessRequest event in NS: when each was first seen Active, and its latest status."""

    def __init__(self, env: Environment) -> None:
        self._client = env._client()
        self.active_at: dict[str, float] = {}
        self.status: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def _loop(self) -> None:
        api = CustomObjectsApi(self._client)
        version: str | None = None
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    api.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    NS,
                    "accessrequests",
                    resource_version=version,
                    timeout_seconds=5,
                ):
                    obj = event["object"]
                    version = obj["metadata"].get("resourceVersion")
                    name, status = obj["metadata"]["name"], obj.get("status") or {}
                    self.status[name] = status
                    if status.get("phase") == "Active" and name not in self.active_at:
                        self.active_at[name] = time.time()
            except Exception:
                version = None
                time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._client.close()


def _wait(condition: Callable[[], bool], *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


class Fleet:
    def __init__(self, env: Environment, aws: AWSStandIns, watcher: Watcher) -> None:
        self.env, self.aws, self.watcher = env, aws, watcher
        self.agents = [env.client_for_service_account(NS, AGENT) for _ in range(THREADS)]
        self.created_at: dict[str, float] = {}
        self.policy_of: dict[str, str] = {}
        self.batch = 0

    def file(self, policies: Sequence[str], per: int, duration_s: int) -> list[str]:
        """`per` requests under each policy, filed by THREADS clients; returns their names."""
        self.batch += 1
        work = [(policy, i) for policy in policies for i in range(per)]
        work = [(f"b{self.batch}-{policy}-{j}", policy) for j, (policy, _) in enumerate(work)]
        self.policy_of.update(work)

        def one(index: int) -> None:
            name, policy = work[index]
            api = CustomObjectsApi(self.agents[index % THREADS])
            self.created_at[name] = time.time()
            api.create_namespaced_custom_object(
                GROUP, VERSION, NS, "accessrequests", _request(name, policy, duration_s)
            )

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(one, range(len(work))))
        return [name for name, _ in work]

    def to_active(self, names: Sequence[str], *, timeout: float) -> dict[str, float]:
        _wait(lambda: all(name in self.watcher.active_at for name in names), timeout=timeout)
        latencies = [
            self.watcher.active_at[n] - self.created_at[n] for n in names if n in self.watcher.active_at
        ]
        out = _dist(latencies)
        out["missing"] = len(names) - len(latencies)
        return out

    def deletes(self, keys: Sequence[str]) -> dict[str, float]:
        """RoleBinding name -> when the target's audit log saw the operator's DELETE of it."""
        found: dict[str, float] = {}
        for key in keys:
            log = self.aws.standins[key].audit_log
            assert log is not None
            for line in log.read_text().splitlines():
                if '"delete"' not in line or "rolebindings" not in line:
                    continue
                event = json.loads(line)
                ref = event.get("objectRef") or {}
                code = (event.get("responseStatus") or {}).get("code", 0)
                if event.get("verb") == "delete" and ref.get("resource") == "rolebindings" and code < 300:
                    found[ref.get("name", "")] = parse_time(event["stageTimestamp"]).timestamp()
        return found

    def expiry_lag(self, names: Sequence[str], keys: Sequence[str], *, timeout: float) -> dict[str, float]:
        """expiresAt -> the DELETE of its RoleBinding in the target, for requests `names`."""
        bindings: dict[str, tuple[str, float]] = {}
        for name in names:
            status = self.watcher.status.get(name) or {}
            grant = status.get("grant") or {}
            if grant.get("roleBinding") and status.get("expiresAt"):
                bindings[name] = (grant["roleBinding"], parse_time(status["expiresAt"]).timestamp())
        latest = max((at for _, at in bindings.values()), default=time.time())
        _wait(lambda: time.time() > latest + 1, timeout=max(0.0, latest + 1 - time.time()) + 1)

        def done() -> bool:
            deleted = self.deletes(keys)
            return all(binding in deleted for binding, _ in bindings.values())

        _wait(done, timeout=timeout)
        deleted = self.deletes(keys)
        lags = [deleted[b] - at for b, at in bindings.values() if b in deleted]
        out = _dist(lags)
        out["missing"] = len(names) - len(lags)
        return out

    def calls_per_minute(self, keys: Sequence[str], since: float, until: float) -> dict[str, float]:
        """The operator's calls to each target between `since` and `until` (audit log), per minute."""
        rates = []
        for key in keys:
            log = self.aws.standins[key].audit_log
            assert log is not None
            count = 0
            for line in log.read_text().splitlines():
                if '"jitgrant:' not in line:
                    continue
                at = parse_time(json.loads(line)["requestReceivedTimestamp"]).timestamp()
                count += since <= at < until
            rates.append(count * 60.0 / (until - since))
        return {"mean": sum(rates) / len(rates), "max": max(rates)}

    def settle(self, names: Sequence[str], *, timeout: float) -> bool:
        """Every one of `names` ended (Expired, Failed...)."""
        ended = {"Expired", "Failed", "Revoked", "Denied", "TimedOut"}
        return _wait(
            lambda: all((self.watcher.status.get(n) or {}).get("phase") in ended for n in names),
            timeout=timeout,
        )

    def close(self) -> None:
        for client in self.agents:
            client.close()


# ---- the run ----------------------------------------------------------------------------------------


def _at_rest(fleet: Fleet, operator: OperatorProcess, keys: Sequence[str], rest_s: float) -> dict[str, Any]:
    time.sleep(2)  # the start-up sweep and the watches' first lists are not rest
    cpu0, t0, wall0 = operator.cpu_s(), time.monotonic(), time.time()
    time.sleep(rest_s)
    cpu1, t1, wall1 = operator.cpu_s(), time.monotonic(), time.time()
    return {
        "startup_s": operator.started_s,
        "rss_mb": operator.rss_mb(),
        "cpu_pct_at_rest": 100.0 * (cpu1 - cpu0) / (t1 - t0),
        "calls_per_target_per_min": fleet.calls_per_minute(keys, wall0, wall1),
    }


def _grants(fleet: Fleet, policies: Sequence[str], keys: Sequence[str], sizes: Sizes) -> dict[str, Any]:
    names = fleet.file(policies, sizes.per_cluster, sizes.duration_s)
    out = {"to_active_s": fleet.to_active(names, timeout=120)}
    out["expiry_lag_s"] = fleet.expiry_lag(names, keys, timeout=60)
    return out


def _scenario(
    fleet: Fleet,
    operator: OperatorProcess,
    keys: Sequence[str],
    dark: Sequence[str],
    mode: Mode,
    sizes: Sizes,
) -> dict[str, Any]:
    """Grants on every cluster; then `dark` go `mode` (LIGHT: they stay healthy, the comparator)
    while theirs fall due and more are filed for them; the other clusters' new grants and expiries
    meanwhile. The same requests are filed in every mode, so only the darkness differs."""
    healthy = [key for key in keys if key not in dark]
    assert fleet.aws.hang is not None
    first = fleet.file(keys, sizes.per_cluster, sizes.duration_s)
    fleet.to_active(first, timeout=120)
    started = time.time()
    for key in dark:
        fleet.aws.hang.clusters[key].mode = mode
    stuck = fleet.file(dark, sizes.per_cluster, sizes.duration_s)
    time.sleep(1)
    fresh = fleet.file(healthy, sizes.per_cluster, sizes.duration_s)
    out: dict[str, Any] = {
        "mode": str(mode),
        "dark": len(dark) if mode is not Mode.LIGHT else 0,
        "healthy": len(healthy),
    }
    out["new_to_active_s"] = fleet.to_active(fresh, timeout=120)
    healthy_first = [name for name in first if fleet.policy_of[name] in healthy]
    out["expiry_lag_s"] = fleet.expiry_lag(healthy_first, healthy, timeout=60)
    out["circuits"] = operator.circuits()
    out["dark_for_s"] = time.time() - started
    for key in dark:
        fleet.aws.hang.clusters[key].mode = Mode.LIGHT
    back = time.time()
    settled = fleet.settle(first + stuck + fresh, timeout=sizes.settle_s)
    out["recovered_s"] = time.time() - back if settled else float("nan")
    return out


def measure(sizes: Sizes, *, keep_log: Path | None = None, log_level: str = "warning") -> dict[str, Any]:
    specs = [ClusterSpec(SOLO)] + [ClusterSpec(f"fleet-{i:03d}") for i in range(sizes.clusters)]
    grantable = load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml")
    out: dict[str, Any] = {"sizes": asdict(sizes)}
    workdir = Path(tempfile.mkdtemp(prefix="jitgrant-fleet-"))
    try:
        _phase(f"starting {len(specs)} stand-in clusters")
        began = time.monotonic()
        keys = [spec.name for spec in specs]
        with AWSStandIns(
            clusters=specs,
            grantable_cluster_roles=grantable,
            namespaces=("payments",),
            deployments=(),
            hang_proxies=keys,
        ) as aws:
            out["standins_start_s"] = time.monotonic() - began
            with Environment(sweep_interval=timedelta(hours=1)) as env:
                env.apply(grantable)
                env.allow_to_request(NS, service_account=AGENT)
                env.apply([_policy(SOLO, aws.target(SOLO))])
                env.operator.stop()  # the operator runs as a process of its own below
                env.receipt_key = secrets.token_hex(32).encode()
                watcher = Watcher(env).start()
                fleet = Fleet(env, aws, watcher)
                try:
                    out.update(_run(fleet, env, aws, workdir, sizes, log_level))
                finally:
                    fleet.close()
                    watcher.stop()
    finally:
        if keep_log is not None and (workdir / "operator.log").exists():
            shutil.copy(workdir / "operator.log", keep_log)
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def _run(
    fleet: Fleet, env: Environment, aws: AWSStandIns, workdir: Path, sizes: Sizes, log_level: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fleet_keys = [f"fleet-{i:03d}" for i in range(sizes.clusters)]
    total = sizes.clusters * sizes.per_cluster
    # One cluster: the operator knows one target; the same number of grants all go there.
    _phase("one cluster: start-up and rest")
    operator = OperatorProcess(env, aws, workdir, sizes, log_level).start()
    try:
        one = _at_rest(fleet, operator, [SOLO], sizes.rest_s)
        _phase(f"one cluster: {total} grants")
        one.update(_grants(fleet, [SOLO] * sizes.clusters, [SOLO], sizes))
        fleet.settle(list(fleet.created_at), timeout=60)
        # The fleet: a policy per cluster (through this operator's webhooks), for the next start.
        env.apply([_policy(key, aws.target(key)) for key in fleet_keys])
    finally:
        operator.stop()
    out["one"] = one
    _phase(f"{sizes.clusters} clusters: start-up and rest")
    operator = OperatorProcess(env, aws, workdir, sizes, log_level).start()
    try:
        many = _at_rest(fleet, operator, fleet_keys, sizes.rest_s)
        _phase(f"{sizes.clusters} clusters: {total} grants")
        many.update(_grants(fleet, fleet_keys, fleet_keys, sizes))
        fleet.settle(list(fleet.created_at), timeout=60)
        out["fleet"] = many
        keys = fleet_keys[: sizes.dark_of]
        dark = keys[: sizes.dark]
        out["scenarios"] = []
        for mode in (Mode.LIGHT, Mode.DARK, Mode.STALL):
            _phase(f"{len(keys)} clusters, {len(dark)} of them {mode}")
            out["scenarios"].append(_scenario(fleet, operator, keys, dark, mode, sizes))
        out["operator_log_tracebacks"] = operator.log_tail(10**7).count("Traceback")
    finally:
        operator.stop()
    return out


# ---- the table ----------------------------------------------------------------------------------------


def _ratio(value: float, floor: float) -> str:
    return f"{value / floor:.2f}x" if floor and floor == floor and value == value else "-"


def table(r: dict[str, Any]) -> str:
    s, one, many = r["sizes"], r["one"], r["fleet"]
    n, total = s["clusters"], s["clusters"] * s["per_cluster"]
    rows = [("", "one cluster", f"{n} clusters", "ratio")]

    def add(label: str, a: float, b: float, fmt: str = "{:.2f}") -> None:
        rows.append((label, fmt.format(a), fmt.format(b), _ratio(b, a)))

    add("start-up, process -> webhooks (s)", one["startup_s"], many["startup_s"])
    add("RSS at rest (MB)", one["rss_mb"], many["rss_mb"], "{:.0f}")
    add("CPU at rest (% of a core)", one["cpu_pct_at_rest"], many["cpu_pct_at_rest"], "{:.1f}")
    add(
        "calls per target per minute at rest (mean)",
        one["calls_per_target_per_min"]["mean"],
        many["calls_per_target_per_min"]["mean"],
        "{:.1f}",
    )
    for key, label in (("to_active_s", "create -> Active"), ("expiry_lag_s", "expiry lag")):
        for q in ("p50", "p99"):
            add(f"{label} {q}, {total} grants (s)", one[key][q], many[key][q])
    lines = [f"{a:44} {b:>12} {c:>12} {d:>8}" for a, b, c, d in rows]
    healthy = next(x for x in r["scenarios"] if x["dark"] == 0)
    lines.append("")
    lines.append(
        f"{s['dark_of']} clusters, healthy vs {s['dark']} dark; figures of the healthy clusters "
        f"({s['per_cluster']} grants each), ratio to all healthy"
    )
    lines.append(
        f"{'':44} {'new p50/p99 (s)':>18} {'ratio p99':>9} {'expiry p50/p99 (s)':>19} {'recovered':>9}"
    )
    for x in r["scenarios"]:
        new, lag = x["new_to_active_s"], x["expiry_lag_s"]
        label = "all healthy (the same requests)" if x["dark"] == 0 else f"{x['dark']} dark ({x['mode']})"
        missing = new["missing"] + lag["missing"]
        lines.append(
            f"{label:44} {new['p50']:>8.2f} /{new['p99']:>7.2f}"
            f" {_ratio(new['p99'], healthy['new_to_active_s']['p99']):>9}"
            f" {lag['p50']:>8.2f} /{lag['p99']:>8.2f} {x['recovered_s']:>8.1f}s"
            + (f"  ({missing} missing)" if missing else "")
            + (f"  circuits {x['circuits']}" if x["circuits"] and x["dark"] else "")
        )
    lines.append(f"tracebacks in the operator's log: {r['operator_log_tracebacks']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--operator-process"]:
        return operator_main(args[1], args[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="4 clusters, 2 dark: under a minute")
    size.add_argument("--full", action="store_true", help="100 clusters (20 of 50 dark)")
    parser.add_argument("--clusters", type=int, help="how many target clusters (overrides the size)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--operator-log", type=Path, help="keep the operator's log here")
    parser.add_argument("--log-level", default="warning", help="the operator's (default: warning)")
    options = parser.parse_args(args)
    sizes = QUICK if options.quick else FULL if options.full else DEFAULT
    if options.clusters:
        sizes = Sizes(
            **{**asdict(sizes), "clusters": options.clusters, "dark_of": min(sizes.dark_of, options.clusters)}
        )
    result = measure(sizes, keep_log=options.operator_log, log_level=options.log_level)
    print(table(result))
    if options.json is not None:
        options.json.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
