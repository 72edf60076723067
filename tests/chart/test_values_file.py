"""values.yaml as a file, and what its defaults promise (issue 23's chart bugs).

A key written twice in values.yaml is silently resolved by YAML (the second wins), so editing the
first did nothing: the file is loaded here with a loader that refuses duplicate keys at any depth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from .conftest import CHART_DIR, only, render


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping key seen twice, naming it and both lines."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (lines {seen[key]} and {line})", key_node.start_mark
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def strict_load(text: str) -> Any:
    return yaml.load(text, Loader=_StrictLoader)


def test_the_strict_loader_refuses_a_duplicate_key() -> None:
    with pytest.raises(
        yaml.constructor.ConstructorError, match=r"duplicate key 'replicaCount' \(lines 1 and 3\)"
    ):
        strict_load("replicaCount: 1\nlogLevel: info\nreplicaCount: 2\n")
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'port'"):
        strict_load("webhook:\n  port: 1\n  port: 2\n")


@pytest.mark.parametrize("path", [CHART_DIR / "values.yaml", CHART_DIR / "Chart.yaml"], ids=lambda p: p.name)
def test_chart_yaml_files_have_no_duplicate_keys(path: Path) -> None:
    strict_load(path.read_text())


def test_a_default_rollout_starts_the_new_pod_first(chart: helm.Chart) -> None:
    strategy = only(render(chart), "Deployment")["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}


def test_with_host_network_a_rollout_replaces_one_pod_at_a_time(chart: helm.Chart) -> None:
    """A surge pod on the host network needs a node whose ports are free: on a cluster without a
    spare node it stays Pending and the upgrade never ends. One at a time needs no spare node."""
    deployment = only(render(chart, {"hostNetwork": True}), "Deployment")
    assert deployment["spec"]["template"]["spec"]["hostNetwork"] is True
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}


def test_the_default_grantable_cluster_roles_are_cluster_roles_the_chart_creates(chart: helm.Chart) -> None:
    """A default naming a ClusterRole nobody created gives the operator `bind` on whatever someone
    later creates under that name (issue 23): the defaults are the chart's own example roles."""
    defaults = strict_load((CHART_DIR / "values.yaml").read_text())
    created = {m["metadata"]["name"] for m in render(chart) if m["kind"] == "ClusterRole"}
    missing = set(defaults["grantableClusterRoles"]) - created
    assert not missing, f"grantableClusterRoles names ClusterRoles the chart does not make: {sorted(missing)}"
    assert defaults["grantableClusterRoles"], "the default allowlist is empty: nothing could be granted"
