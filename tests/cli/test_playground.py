"""`jitgrant run --embedded` as a newcomer uses it: the printed HTTPS address, kubeconfigs for an
agent, an approver and an admin, sample Deployments, the metrics and health ports, and from the
printed kubeconfigs to an approved grant with no hand-written RBAC. Nothing is left behind."""

from __future__ import annotations

import argparse
import re
import stat
import threading
import time
import urllib.request
from pathlib import Path

import kubernetes
import pytest
from kubernetes.client import AppsV1Api, CustomObjectsApi

from jitgrant.cli.main import main
from jitgrant_testing.cli import embedded
from jitgrant_testing.environment import EXAMPLES, Environment, free_port, load_manifests


def client_from(path: Path) -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(path), client_configuration=configuration)
    return kubernetes.client.ApiClient(configuration)


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def test_from_the_playground_to_an_approved_grant(capsys: pytest.CaptureFixture[str]) -> None:
    stop = threading.Event()
    metrics_port, health_port = free_port(), free_port()
    args = argparse.Namespace(
        state_dir=None, keep=False, metrics_port=metrics_port, health_port=health_port, stop=stop
    )
    outcome: list[int] = []
    runner = threading.Thread(target=lambda: outcome.append(embedded(args)))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while (
            "press Ctrl-C to stop" not in (banner := capsys.readouterr().out) and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        # (readouterr consumes: keep what was read)
        url = re.search(r"embedded cluster at (\S+)", banner)
        assert url is not None and url.group(1).startswith("https://127.0.0.1:"), banner
        paths = {
            who: Path(found) for who, found in re.findall(r"^  (agent|approver|admin)\s+(\S+)", banner, re.M)
        }
        assert set(paths) == {"agent", "approver", "admin"}
        state_dir = paths["agent"].parent
        for path in paths.values():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert url.group(1) in path.read_text()

        admin = client_from(paths["admin"])
        names = [d.metadata.name for d in AppsV1Api(admin).list_namespaced_deployment("payments").items]
        assert sorted(names) == ["checkout", "ledger"]

        # The agent files the example request with its own kubeconfig; alice approves with hers.
        [manifest] = load_manifests(EXAMPLES / "requests" / "restart-checkout-prod.yaml")
        agent = client_from(paths["agent"])
        CustomObjectsApi(agent).create_namespaced_custom_object(
            "jitgrant.dev", "v1alpha1", "agents", "accessrequests", manifest
        )
        name = manifest["metadata"]["name"]
        for _ in range(100):
            listed = main(["list", "--pending", "-o", "name", "--kubeconfig", str(paths["approver"])])
            if f"accessrequest.jitgrant.dev/{name}" in capsys.readouterr().out:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"{name} never waited for alice (last exit code {listed})")
        assert main(["approve", name, "--reason", "looked", "--kubeconfig", str(paths["approver"])]) == 0
        for _ in range(100):
            phase = (
                CustomObjectsApi(agent)
                .get_namespaced_custom_object("jitgrant.dev", "v1alpha1", "agents", "accessrequests", name)
                .get("status", {})
                .get("phase")
            )
            if phase == "Active":
                break
            time.sleep(0.2)
        assert phase == "Active"

        assert get(f"http://127.0.0.1:{metrics_port}/metrics")[1].count("jitgrant_") > 0
        assert get(f"http://127.0.0.1:{health_port}/healthz")[0] == 200
        admin.close()
        agent.close()
    finally:
        stop.set()
        runner.join(timeout=60)
    assert outcome == [0]
    assert not state_dir.exists(), "the temporary state directory (bearer tokens) outlived the playground"


def test_a_named_state_dir_is_kept_and_a_fresh_one_removed(tmp_path: Path) -> None:
    with Environment(state_dir=tmp_path / "mine") as named:
        (named.state_dir / "note").write_text("x")
    assert (tmp_path / "mine" / "note").exists()
    with Environment() as fresh:
        made = fresh.state_dir
        assert made.exists() and (made / "webhook").exists()
    assert not made.exists()
