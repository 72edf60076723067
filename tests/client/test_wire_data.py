"""Structured data on the wire instead of prose: the dry-run codec both sides use, the operator's
status.approvalsRequired, and kubeconfigs read by the client itself."""

from __future__ import annotations

import base64
import stat
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from jitgrant.client import AsyncClient, Client, Connection
from jitgrant.client.transport import HttpRequest, MockResponse, MockTransport
from jitgrant.models.dryrun import (
    DryRunWire,
    decode_refusal,
    decode_warnings,
    encode_refusal,
    encode_warnings,
)
from jitgrant_testing.agents import NS, REASON, Agents

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@given(
    outcome=st.sampled_from(["allowed", "pending-approval"]),
    message=TEXT,
    duration=st.none() | st.just("10m"),
    approvals=st.integers(0, 9),
    approvers=st.none() | TEXT,
)
def test_the_warnings_carry_the_answer_whatever_its_message_holds(
    outcome: str, message: str, duration: str | None, approvals: int, approvers: str | None
) -> None:
    wire = DryRunWire(outcome, "AwaitingApproval", message, duration, approvals, approvers)  # type: ignore[arg-type]
    assert decode_warnings(encode_warnings(wire)) == wire


@given(message=TEXT)
def test_a_refusal_carries_reason_and_message(message: str) -> None:
    refusal = 'admission webhook "v.jitgrant.dev" denied the request: ' + encode_refusal(
        "PolicyRefused", message
    )
    assert decode_refusal(refusal) == DryRunWire("denied", "PolicyRefused", message.strip())


def test_other_refusals_and_warnings_are_not_read_as_answers() -> None:
    assert decode_refusal('accessrequests.jitgrant.dev is forbidden: User "x" cannot create') is None
    assert decode_warnings(["jitgrant.dev/dry-run: AutoApproved: looks like one, is prose"]) is None
    assert decode_warnings(["jitgrant.dev/dry-run-answer: {not json"]) is None


def test_the_operator_writes_approvals_required_with_pending(agents: Agents) -> None:
    with Client.from_kubeconfig(agents.kubeconfig()) as client:
        filed = client.request(
            policy="prod-restart",
            namespace="payments",
            cluster_role="jit-restart-checkout",
            justification=REASON,
        )
        agents.env.wait_for_phase(NS, filed.metadata.name, "Pending")
        pending = client.status(filed.metadata.name)
        client.release(filed.metadata.name)
    assert pending.status.approvals_required == 1  # prod-restart's minApprovals


def kubeconfig(directory: Path, user: dict[str, object], **cluster: object) -> Path:
    path = directory / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://api.example:6443", **cluster}}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "team"}}],
                "current-context": "x",
            }
        )
    )
    return path


def authorization_sent(connection: Connection) -> list[str]:
    def answer(request: HttpRequest) -> MockResponse:
        return MockResponse(201, json={"status": {"userInfo": {"username": "me"}}})

    transport = MockTransport(answer)
    connection.transport = transport
    with Client(AsyncClient(connection)) as client:
        client.whoami()
    return transport.requests[0].header("Authorization")


def test_an_exec_plugins_token_is_sent(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    plugin.write_text(
        f"#!{sys.executable}\nimport json, os\n"
        "assert json.loads(os.environ['KUBERNETES_EXEC_INFO'])['kind'] == 'ExecCredential'\n"
        "print(json.dumps({'status': {'token': 'from-plugin-' + os.environ['WHO']}}))\n"
    )
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    exec_spec = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": str(plugin),
        "env": [{"name": "WHO", "value": "me"}],
    }
    connection = Connection.from_kubeconfig(kubeconfig(tmp_path, {"exec": exec_spec}))
    assert connection.namespace == "team" and connection.host == "https://api.example:6443"
    assert authorization_sent(connection) == ["Bearer from-plugin-me"]


def test_files_are_read_relative_to_their_kubeconfig_and_data_is_decoded(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("file-token\n")
    ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    path = kubeconfig(
        tmp_path,
        {"tokenFile": "token"},
        **{"certificate-authority-data": base64.b64encode(ca.encode()).decode()},
    )
    connection = Connection.from_kubeconfig(path)
    assert connection.tls.ca_data == ca
    assert authorization_sent(connection) == ["Bearer file-token"]


def test_a_kubeconfig_the_client_does_not_read_itself_goes_to_the_official_loader(tmp_path: Path) -> None:
    """Basic auth: the Kubernetes client's loader handles it, as before."""
    path = kubeconfig(tmp_path, {"username": "u", "password": "p"})
    connection = Connection.from_kubeconfig(path)
    assert connection.host == "https://api.example:6443"
    assert authorization_sent(connection) == ["Basic " + base64.b64encode(b"u:p").decode()]
    assert "kubernetes" in sys.modules


def test_a_broken_kubeconfig_names_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {"contexts": [{"name": "x", "context": {"cluster": "gone", "user": "u"}}], "current-context": "x"}
        )
    )
    with pytest.raises(Exception, match="no cluster named 'gone'"):
        Connection.from_kubeconfig(path)
