"""Suite-wide options. The real-cluster suite is opt-in: without --real-cluster it is deselected
(not skipped), because it needs a cluster with jitgrant installed that CI machines do not have."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--real-cluster",
        action="store_true",
        default=False,
        help="run tests/realcluster against the cluster KUBECONFIG points at (jitgrant installed by Helm)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--real-cluster"):
        return
    selected = [item for item in items if "realcluster" not in item.keywords]
    deselected = [item for item in items if "realcluster" in item.keywords]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def pytest_report_header(config: pytest.Config) -> str:
    if config.getoption("--real-cluster"):
        return "jitgrant: real-cluster suite ON (KUBECONFIG)"
    return "jitgrant: real-cluster suite deselected (opt in with --real-cluster)"
