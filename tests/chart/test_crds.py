"""The chart ships exactly the CRDs generated from the models, as templates (so `helm upgrade`
upgrades them), once, with `crds.enabled` and `crds.keep` doing what they say."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from .conftest import CHART_DIR, NAMESPACE, RELEASE, ROOT, Manifest, notes, render

SHIPPED = CHART_DIR / "files" / "crds"
KEEP = {"helm.sh/resource-policy": "keep"}


def generated() -> dict[str, Manifest]:
    """CRD name -> manifest, from the repository's crds/ (the one source, generated from the models)."""
    manifests = [yaml.safe_load(path.read_text()) for path in sorted((ROOT / "crds").glob("*.yaml"))]
    assert manifests, "crds/ is empty"
    return {m["metadata"]["name"]: m for m in manifests}


def rendered_crds(chart: helm.Chart, values: dict[str, Any]) -> dict[str, Manifest]:
    manifests = render(chart, values)
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == "CustomResourceDefinition"}


def test_the_charts_copies_are_byte_identical_to_the_generated_crds() -> None:
    source = {path.name: path.read_bytes() for path in sorted((ROOT / "crds").glob("*.yaml"))}
    copies = {path.name: path.read_bytes() for path in sorted(SHIPPED.iterdir())}
    assert copies.keys() == source.keys(), "charts/jitgrant/files/crds/ and crds/ hold different files"
    for name, content in source.items():
        assert copies[name] == content, f"files/crds/{name} differs from crds/{name}: run make crds"


def test_the_crds_are_installed_once_as_templates(chart: helm.Chart) -> None:
    """No crds/ directory: Helm would install it on first install and never upgrade it, and the
    templates would then meet CRDs they do not own."""
    assert not (CHART_DIR / "crds").exists()
    assert chart.crds == []
    kinds = [m["kind"] for m in render(chart, {})]
    assert kinds.count("CustomResourceDefinition") == len(generated()) == 2


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize("keep", [True, False])
def test_each_combination_renders_the_generated_crds_plus_metadata(
    chart: helm.Chart, enabled: bool, keep: bool
) -> None:
    crds = rendered_crds(chart, {"crds": {"enabled": enabled, "keep": keep}})
    if not enabled:
        assert crds == {}
        return
    source = generated()
    assert crds.keys() == source.keys()
    for name, crd in crds.items():
        # Everything but metadata is the generated CRD, value for value.
        assert {k: v for k, v in crd.items() if k != "metadata"} == {
            k: v for k, v in source[name].items() if k != "metadata"
        }
        metadata = crd["metadata"]
        assert set(metadata) == {"name", "labels"} | ({"annotations"} if keep else set())
        assert metadata.get("annotations") == (KEEP if keep else None)
        assert metadata["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        for version in ("1.28.0", kubernetes_validate.utils.latest_version()):
            kubernetes_validate.validate(crd, version, strict=True)


def test_the_crds_are_kept_by_default(chart: helm.Chart) -> None:
    crds = rendered_crds(chart, {})
    assert [crd["metadata"]["annotations"] for crd in crds.values()] == [KEEP, KEEP]


def test_a_changed_crd_in_the_source_reaches_the_rendered_template(tmp_path: Path) -> None:
    """The template renders whatever files/crds/ holds: no second copy that could drift."""
    copy = tmp_path / "jitgrant"
    shutil.copytree(CHART_DIR, copy)
    path = copy / "files" / "crds" / "jitgrant.dev_accessrequests.yaml"
    changed = yaml.safe_load(path.read_text())
    changed["spec"]["names"]["shortNames"] = ["areq"]
    path.write_text(yaml.safe_dump(changed))
    with helm.Chart.load(copy) as edited:
        crds = rendered_crds(edited, {})
    assert crds["accessrequests.jitgrant.dev"]["spec"]["names"]["shortNames"] == ["areq"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"crds": {"enabled": "false"}}, "at '/crds/enabled': got string, want boolean"),
        ({"crds": {"keep": 0}}, "at '/crds/keep': got number, want boolean"),
        ({"crds": {"install": True}}, "at '/crds': additional properties 'install' not allowed"),
        ({"crds": True}, "at '/crds': got boolean, want object"),
    ],
)
def test_wrong_crd_values_are_refused_naming_the_key(
    chart: helm.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as refused:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    assert message in str(refused.value)


def test_notes_say_what_happens_to_the_crds(chart: helm.Chart) -> None:
    assert "The CRDs stay on `helm uninstall` (crds.keep)" in notes(chart)
    assert "WARNING: crds.keep is false" in notes(chart, {"crds": {"keep": False}})
    unmanaged = notes(chart, {"crds": {"enabled": False}})
    assert "crds.enabled is false, so the chart installs none" in unmanaged
    assert "crds.keep" not in unmanaged
