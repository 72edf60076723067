"""`jitgrant activity-receiver` as a process: what the API server posts lands where `activity` reads,
and nobody without the webhook kubeconfig's token gets a call into the record."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jitgrant.activity.base import Window
from jitgrant.activity.files import AuditLogFiles

JITGRANT = str(Path(sys.executable).parent / "jitgrant")  # the installed entry point
EVENT = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "5e1b9c4e-0000-4000-8000-000000000001",
    "stage": "ResponseComplete",
    "requestURI": "/apis/apps/v1/namespaces/payments/deployments/checkout",
    "verb": "patch",
    "user": {"username": "system:serviceaccount:agents:oncall-agent"},
    "objectRef": {"resource": "deployments", "namespace": "payments", "name": "checkout"},
    "responseStatus": {"code": 200},
    "requestReceivedTimestamp": "2026-12-01T07:00:00.000000Z",
    "stageTimestamp": "2026-12-01T07:00:00.010000Z",
}


def _post(url: str, body: object, token: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    (tmp_path / "token").write_text("s3cret-token\n")
    log = tmp_path / "audit" / "audit.log"
    argv = [JITGRANT, "activity-receiver", "--audit-log", str(log), "--port", "0"]
    process = subprocess.Popen(
        [*argv, "--token-file", str(tmp_path / "token")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        assert line.startswith("receiving audit events on http://127.0.0.1:"), line + process.stderr.read()
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        yield url, log, process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_posted_events_land_in_the_log_activity_reads_and_a_post_without_the_token_does_not(
    receiver: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    url, log, process = receiver
    # As kube-apiserver posts them: kind and apiVersion on the list only.
    bare = {k: v for k, v in EVENT.items() if k not in ("kind", "apiVersion")}
    batch = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [bare]}
    assert _post(url, batch, token="s3cret-token") == 200
    forged = {**bare, "auditID": "5e1b9c4e-0000-4000-8000-00000000bad0"}
    assert _post(url, {**batch, "items": [forged]}, token=None) == 401
    assert _post(url, {**batch, "items": [forged]}, token="guess") == 401
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [event["auditID"] for event in lines] == [EVENT["auditID"]]
    # The file source reads, as a parsed call, what the receiver wrote.
    window = Window(start=datetime(2026, 12, 1, 6, 59, tzinfo=UTC), end=None)
    assert [call.verb for call in AuditLogFiles(log).calls(window)] == ["patch"]
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "stopped after 1 batches, 1 events" in out


def test_a_receiver_nobody_has_to_prove_anything_to_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [JITGRANT, "activity-receiver", "--audit-log", str(tmp_path / "a.log"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "needs the API server to authenticate" in done.stderr
