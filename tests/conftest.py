"""Suite-wide options. The real-cluster suite is opt-in: without --real-cluster it is deselected
(not skipped), because it needs a cluster with jitgrant installed that CI machines do not have.
The real-node suite (tests/e2e, `make e2e`) is opt-in the same way with --e2e: it needs root and
starts containerd and a kubelet on the machine."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--real-cluster",
        action="store_true",
        default=False,
        help="run tests/realcluster against the cluster KUBECONFIG points at (jitgrant installed by Helm)",
    )
    parser.addoption(
        "--e2e",
        action="store_true",
        default=False,
        help="run tests/e2e: a real node on this machine (root; make e2e)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    opted_out = {
        marker
        for marker, option in (("realcluster", "--real-cluster"), ("e2e", "--e2e"))
        if not config.getoption(option)
    }
    if not opted_out:
        return
    selected = [item for item in items if not opted_out & set(item.keywords)]
    deselected = [item for item in items if opted_out & set(item.keywords)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def pytest_report_header(config: pytest.Config) -> str:
    if config.getoption("--real-cluster"):
        return "jitgrant: real-cluster suite ON (KUBECONFIG)"
    return "jitgrant: real-cluster suite deselected (opt in with --real-cluster)"
