"""crds/ is generated from the models; a stale file fails here (and in `make test`)."""

from __future__ import annotations

from pathlib import Path

from jitgrant.crdgen import main, render
from jitgrant.models.crd import access_request_crd, all_crds

CRDS = Path(__file__).resolve().parents[2] / "crds"


def test_crds_directory_matches_the_models() -> None:
    for filename, manifest in all_crds().items():
        assert (CRDS / filename).read_text() == render(manifest), f"{filename} is stale: run `make crds`"


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 0
    assert main([str(tmp_path), "--check"]) == 0
    target = tmp_path / "jitgrant.dev_accessrequests.yaml"
    target.write_text(target.read_text().replace("shortNames", "shortNamez"))
    assert main([str(tmp_path), "--check"]) == 1


def _walk(node: object) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(_walk(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_walk(value))
    return found


def test_schemas_are_structural() -> None:
    """No $ref, anyOf-with-null or additionalProperties:false: the API server refuses them. Defaults
    only where crd.py sets them (target and approval, so `kubectl get gp` shows them)."""
    for manifest in all_crds().values():
        schema = manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for node in _walk(schema):
            assert "$ref" not in node and "$defs" not in node and "title" not in node
            assert node.get("additionalProperties") is not False
            assert "default" not in node or node["default"] in ({}, False, "InCluster")
            if "properties" in node:
                assert node.get("type") == "object"


def test_access_request_crd_has_status_short_names_columns_and_immutability() -> None:
    crd = access_request_crd()
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["shortNames"] == ["ar"]
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase" and columns["Expires"] == ".status.expiresAt"
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert {"rule": "self == oldSelf", "message": spec["x-kubernetes-validations"][0]["message"]} in spec[
        "x-kubernetes-validations"
    ]
    duration = spec["properties"]["duration"]
    assert (
        duration["pattern"]
        and duration["x-kubernetes-validations"][0]["rule"] == "duration(self) > duration('0s')"
    )
