"""The chart ships exactly the CRDs generated from the models."""

from __future__ import annotations

import helm_python as helm
import kubernetes_validate
import yaml

from .conftest import CHART_DIR, ROOT


def test_chart_crds_are_byte_identical_to_the_generated_ones() -> None:
    generated = {path.name: path.read_bytes() for path in sorted((ROOT / "crds").glob("*.yaml"))}
    shipped = {path.name: path.read_bytes() for path in sorted((CHART_DIR / "crds").glob("*.yaml"))}
    assert generated, "crds/ is empty"
    assert shipped.keys() == generated.keys()
    for name, content in generated.items():
        assert shipped[name] == content, (
            f"charts/jitgrant/crds/{name} differs from crds/{name}: copy it again"
        )
    assert sorted(p.name for p in (CHART_DIR / "crds").iterdir()) == sorted(generated)


def test_helm_loads_the_crds_and_they_are_valid(chart: helm.Chart) -> None:
    crds = [yaml.safe_load(entry["data"]) for entry in chart.crds]
    assert sorted(crd["metadata"]["name"] for crd in crds) == [
        "accessrequests.jitgrant.dev",
        "grantpolicies.jitgrant.dev",
    ]
    for crd in crds:
        kubernetes_validate.validate(crd, "1.28.0", strict=True)
