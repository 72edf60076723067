"""ClusterConnection: a value that builds a Kubernetes client asking for a fresh token per request."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from embedkube import EmbeddedCluster, User
from jitgrant.clusters.connection import (
    BearerToken,
    ClusterConnection,
    ServiceAccountTokenFile,
    StaticToken,
    in_cluster_connection,
    kubeconfig_connection,
)
from jitgrant.clusters.errors import classify_kubernetes_error

from ._aws import FakeClock


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(name="target") as embedded:
        yield embedded


def whoami(connection: ClusterConnection) -> str:
    with connection.to_api_client() as api:
        review = kubernetes.client.AuthenticationV1Api(api).create_self_subject_review(
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
    return str(review.status.user_info.username)


class Rotating:
    """A token provider handing out the next token on every call, like one refreshing on expiry."""

    def __init__(self, tokens: list[str]) -> None:
        self._tokens = tokens
        self._lock = threading.Lock()
        self.calls = 0

    def __call__(self) -> BearerToken:
        with self._lock:
            token = self._tokens[min(self.calls, len(self._tokens) - 1)]
            self.calls += 1
        return BearerToken(token)


def test_one_client_sends_the_provider_s_current_token_on_every_request(cluster: EmbeddedCluster) -> None:
    first = cluster.add_user(User(name="first"))
    second = cluster.add_user(User(name="second"))
    # One call when the client is built, then one per request.
    provider = Rotating([first, first, second])
    connection = ClusterConnection(
        name="target", server=cluster.https_url, ca_pem=cluster.ca_pem, token_provider=provider
    )
    with connection.to_api_client() as api:
        auth = kubernetes.client.AuthenticationV1Api(api)
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        names = [auth.create_self_subject_review(body=body).status.user_info.username for _ in range(2)]
    assert names == ["first", "second"]


def test_the_ca_is_verified(cluster: EmbeddedCluster) -> None:
    token = StaticToken(BearerToken(cluster.admin_token))
    trusted = ClusterConnection(
        name="t", server=cluster.https_url, ca_pem=cluster.ca_pem, token_provider=token
    )
    assert whoami(trusted)
    with EmbeddedCluster(name="other") as other:  # a different CA
        wrong = ClusterConnection(
            name="t", server=cluster.https_url, ca_pem=other.ca_pem, token_provider=token
        )
        with pytest.raises(Exception) as caught:
            whoami(wrong)
    assert classify_kubernetes_error(caught.value, cluster="t").reason == "ClusterTLSFailure"


def test_plain_http_dev_servers_need_no_ca(cluster: EmbeddedCluster) -> None:
    connection = ClusterConnection(
        name="dev", server=cluster.url, token_provider=StaticToken(BearerToken(cluster.admin_token))
    )
    assert whoami(connection)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"server": "ftp://x", "token_provider": StaticToken(BearerToken("t"))}, r"not an http\(s\) URL"),
        (
            {"server": "http://x", "ca_pem": b"pem", "token_provider": StaticToken(BearerToken("t"))},
            "plain http",
        ),
        ({"server": "https://x"}, "token provider or a client certificate"),
    ],
)
def test_impossible_connections_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClusterConnection(name="c", **kwargs)


def test_tokens_stay_out_of_reprs() -> None:
    connection = ClusterConnection(
        name="c", server="https://x", ca_pem=b"PEM", token_provider=StaticToken(BearerToken("s3cr3t-token"))
    )
    assert "s3cr3t-token" not in repr(connection) and "s3cr3t-token" not in repr(connection.token())


def test_kubeconfig_connection_uses_server_ca_and_token(cluster: EmbeddedCluster) -> None:
    token = cluster.add_user(User(name="from-kubeconfig"))
    connection = kubeconfig_connection(config_dict=cluster.kubeconfig(token=token))
    assert connection.server == cluster.https_url
    assert connection.ca_pem == cluster.ca_pem
    assert whoami(connection) == "from-kubeconfig"


def test_kubeconfig_file_connection(cluster: EmbeddedCluster, tmp_path: Path) -> None:
    token = cluster.add_user(User(name="from-file"))
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(cluster.kubeconfig(token=token)))
    assert whoami(kubeconfig_connection(config_file=str(path))) == "from-file"


def test_insecure_kubeconfigs_are_refused(cluster: EmbeddedCluster) -> None:
    config = cluster.kubeconfig(token="t")
    cluster_entry = config["clusters"][0]["cluster"]
    del cluster_entry["certificate-authority-data"]
    cluster_entry["insecure-skip-tls-verify"] = True
    with pytest.raises(ValueError, match="insecure-skip-tls-verify"):
        kubeconfig_connection(config_dict=config)


def test_in_cluster_connection_reads_the_pod_environment(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\n...")
    (tmp_path / "token").write_text("projected-token\n")
    connection = in_cluster_connection(
        environ={"KUBERNETES_SERVICE_HOST": "10.100.0.1", "KUBERNETES_SERVICE_PORT": "443"},
        service_account_dir=tmp_path,
    )
    assert connection.server == "https://10.100.0.1:443"
    assert connection.ca_pem == b"-----BEGIN CERTIFICATE-----\n..."
    token = connection.token()
    assert token is not None and token.value == "projected-token"

    ipv6 = in_cluster_connection(
        environ={"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"},
        service_account_dir=tmp_path,
    )
    assert ipv6.server == "https://[fd00::1]:443"

    with pytest.raises(RuntimeError, match="not running in a cluster"):
        in_cluster_connection(environ={}, service_account_dir=tmp_path)


def test_the_projected_token_is_read_again_after_a_minute(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("old")
    clock = FakeClock()
    provider = ServiceAccountTokenFile(path, clock=clock)
    assert provider().value == "old"
    path.write_text("rotated")  # the kubelet rotates the file
    assert provider().value == "old"
    clock.advance(timedelta(minutes=1))
    assert provider().value == "rotated"


def test_a_target_that_never_answers_fails_after_one_read_timeout_not_four() -> None:
    """urllib3 retried each read 3 times by default, so a hanging target held a grant for four read
    timeouts per attempt (77 s in make chaos); the scheduler's own backoff does the retrying."""
    from jitgrant_testing.aws import blackhole

    sock, server = blackhole()
    try:
        connection = ClusterConnection(
            name="hanging", server=server, token_provider=StaticToken(BearerToken("t"))
        )
        started = time.monotonic()
        with connection.to_api_client() as api, pytest.raises(Exception) as raised:
            kubernetes.client.CoreV1Api(api).read_namespace("payments", _request_timeout=(1.0, 0.5))
        took = time.monotonic() - started
    finally:
        sock.close()
    assert took < 1.5, f"{took:.1f}s: the read was retried"
    error = classify_kubernetes_error(raised.value, cluster="hanging")
    assert error.retryable, error
