"""Every example manifest loads into the models, so the examples cannot rot."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from jitgrant.models import AccessRequest, GrantPolicy
from jitgrant.offline.cases import PolicyTestFile

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODELS: dict[str, type[GrantPolicy] | type[AccessRequest] | type[PolicyTestFile]] = {
    "GrantPolicy": GrantPolicy,
    "AccessRequest": AccessRequest,
    "GrantPolicyTest": PolicyTestFile,  # policy test cases (jitgrant policy test examples/)
}


def _jitgrant_documents() -> list[tuple[str, dict[str, object]]]:
    found = []
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and str(document.get("apiVersion", "")).startswith("jitgrant.dev/"):
                found.append((str(path.relative_to(EXAMPLES)), document))
    return found


def test_there_are_examples_of_both_kinds() -> None:
    kinds = {doc["kind"] for _, doc in _jitgrant_documents()}
    assert kinds == {"GrantPolicy", "AccessRequest", "GrantPolicyTest"}


@pytest.mark.parametrize(
    ("path", "document"), _jitgrant_documents(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_example_loads_into_its_model(path: str, document: dict[str, object]) -> None:
    model = MODELS[str(document["kind"])]
    parsed = model.model_validate(document)
    name = parsed.metadata["name"] if isinstance(parsed, PolicyTestFile) else parsed.metadata.name
    assert name == document["metadata"]["name"]  # type: ignore[index]


def test_a_typo_in_a_manifest_is_an_error_not_ignored() -> None:
    document = yaml.safe_load((EXAMPLES / "oncall-restart" / "policy.yaml").read_text())
    document["spec"]["maxDuraton"] = "1h"
    with pytest.raises(ValueError, match="maxDuraton"):
        GrantPolicy.model_validate(document)
