"""The scoped kubeconfig handed to an agent: read back by the official client, and used for real."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
import yaml
from kubernetes.config.kube_config import KubeConfigLoader

from embedkube import EmbeddedCluster, User
from jitgrant.grants.kubeconfig import kubeconfig_yaml, scoped_kubeconfig

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def build(**overrides: object) -> dict[str, object]:
    arguments: dict[str, object] = {
        "cluster_name": "prod-eu",
        "server": "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
        "ca_pem": CA,
        "token": "grant-token",
        "namespace": "payments",
        "user": "system:serviceaccount:payments:jit-oncall-bot",
    }
    arguments.update(overrides)
    return scoped_kubeconfig(**arguments)  # type: ignore[arg-type]


def test_the_official_loader_reads_host_token_ca_and_namespace() -> None:
    config = build()
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config_from_dict(config, client_configuration=configuration)
    assert configuration.host == "https://ABC.gr7.eu-west-1.eks.amazonaws.com"
    assert configuration.api_key["BearerToken"] == "Bearer grant-token"
    assert Path(configuration.ssl_ca_cert).read_bytes() == CA
    assert configuration.verify_ssl is True

    loader = KubeConfigLoader(config_dict=config)
    assert loader.current_context["context"]["namespace"] == "payments"
    assert loader.current_context["context"]["user"] == "system:serviceaccount:payments:jit-oncall-bot"


def test_yaml_text_round_trips() -> None:
    config = build()
    assert yaml.safe_load(kubeconfig_yaml(config)) == config
    cluster = config["clusters"][0]["cluster"]  # type: ignore[index]
    assert base64.b64decode(cluster["certificate-authority-data"]) == CA


def test_no_ca_means_no_ca_entry_and_never_insecure() -> None:
    cluster = build(ca_pem=None)["clusters"][0]["cluster"]  # type: ignore[index]
    assert cluster == {"server": "https://ABC.gr7.eu-west-1.eks.amazonaws.com"}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"token": ""}, "token"),
        ({"namespace": ""}, "namespace"),
        ({"server": "ABC.eks.amazonaws.com"}, "URL"),
    ],
)
def test_incomplete_kubeconfigs_are_refused(override: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(**override)


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(name="prod-eu") as embedded:
        yield embedded


def test_kubectl_style_use_lands_in_the_grant_namespace_as_the_grant_user(cluster: EmbeddedCluster) -> None:
    token = cluster.add_user(User(name="system:serviceaccount:payments:jit-oncall-bot"))
    config = scoped_kubeconfig(
        cluster_name="prod-eu",
        server=cluster.https_url,
        ca_pem=cluster.ca_pem,
        token=token,
        namespace="payments",
        user="system:serviceaccount:payments:jit-oncall-bot",
    )
    with kubernetes.config.new_client_from_config_dict(yaml.safe_load(kubeconfig_yaml(config))) as api:
        review = kubernetes.client.AuthenticationV1Api(api).create_self_subject_review(
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
    assert review.status.user_info.username == "system:serviceaccount:payments:jit-oncall-bot"
    loader = KubeConfigLoader(config_dict=config)
    assert loader.current_context["context"]["namespace"] == "payments"
