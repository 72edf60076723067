"""The chart's `identity:` values: the operator's key-cache flags, and read access to the CA-bundle
ConfigMaps it names (and to nothing else)."""

from __future__ import annotations

import helm_python as helm
import pytest

from jitgrant.permissions import CA_BUNDLE_PERMISSIONS, atoms

from .conftest import NAMESPACE, only, render


def _args(chart: helm.Chart, values: dict[str, object] | None = None) -> list[str]:
    deployment = only(render(chart, values), "Deployment")
    [container] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "operator"]
    return list(container["args"])


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_identity_values_become_the_operators_flags(chart: helm.Chart) -> None:
    args = _args(
        chart,
        {"identity": {"jwksCacheTTLSeconds": 60, "jwksRefetchIntervalSeconds": 2, "fetchBudgetSeconds": 2.5}},
    )
    assert (_flag(args, "--jwks-cache-ttl"), _flag(args, "--jwks-refetch-interval")) == ("60", "2")
    assert _flag(args, "--identity-fetch-budget") == "2.5"


@pytest.mark.parametrize(
    "identity",
    [{"fetchBudgetSeconds": 10}, {"jwksCacheTTLSeconds": 0}, {"jwksRefetchIntervalSeconds": -1}],
)
def test_values_outside_what_the_operator_accepts_are_refused(
    chart: helm.Chart, identity: dict[str, object]
) -> None:
    with pytest.raises(Exception, match="identity"):
        render(chart, {"identity": identity})


def test_no_ca_bundle_configmaps_means_no_configmap_access(chart: helm.Chart) -> None:
    manifests = render(chart)
    for manifest in manifests:
        if manifest["kind"] in ("Role", "ClusterRole"):
            assert all("configmaps" not in rule.get("resources", ()) for rule in manifest["rules"])


def test_ca_bundle_configmaps_are_readable_by_name_in_the_operators_namespace(chart: helm.Chart) -> None:
    manifests = render(chart, {"identity": {"caBundleConfigMaps": ["corp-idp-ca"]}})
    role = only(manifests, "Role", "jitgrant-ca-bundles")
    assert role["metadata"]["namespace"] == NAMESPACE
    granted = {
        (group, rule["resources"][0], verb, name)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for verb in rule["verbs"]
        for name in rule["resourceNames"]
    }
    assert granted == set(atoms(CA_BUNDLE_PERMISSIONS, resource_names=("corp-idp-ca",)))
    binding = only(manifests, "RoleBinding", "jitgrant-ca-bundles")
    assert binding["roleRef"]["name"] == "jitgrant-ca-bundles"
    assert binding["subjects"][0]["namespace"] == NAMESPACE
