"""The values users of well-kept charts expect: each renders where it should, and the schema refuses a
wrong type naming the key; every key of the schema says what it is for."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
import yaml

from .conftest import CHART_DIR, COMBINATIONS, NAMESPACE, RELEASE, Manifest, only, render

HATCHES = COMBINATIONS["escape-hatches"]


def pod(manifests: list[Manifest]) -> dict[str, Any]:
    spec: dict[str, Any] = only(manifests, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(manifests: list[Manifest]) -> dict[str, Any]:
    found: dict[str, Any] = pod(manifests)["containers"][0]
    return found


@pytest.fixture(scope="module")
def hatches(chart: helm.Chart) -> list[Manifest]:
    return render(chart, HATCHES)


def test_extra_args_env_and_volumes_reach_the_operator(hatches: list[Manifest]) -> None:
    operator = container(hatches)
    assert operator["args"][-2:] == ["--sweep-interval", "60"]
    assert {"name": "HTTPS_PROXY", "value": "http://proxy.corp.example:3128"} in operator["env"]
    assert {"name": "corp-ca", "mountPath": "/etc/corp-ca", "readOnly": True} in operator["volumeMounts"]
    assert {"name": "corp-ca", "configMap": {"name": "corp-ca"}} in pod(hatches)["volumes"]
    # The chart's own mounts stay.
    assert {m["mountPath"] for m in operator["volumeMounts"]} >= {"/etc/jitgrant/webhook", "/tmp"}


def test_log_level_and_format_become_flags(hatches: list[Manifest], chart: helm.Chart) -> None:
    args = container(hatches)["args"]
    assert args[args.index("--log-level") + 1] == "debug"
    assert args[args.index("--log-format") + 1] == "json"
    args = container(render(chart))["args"]
    assert args[args.index("--log-format") + 1] == "text"


def test_host_network_serves_the_webhook_on_a_chosen_node_port(chart: helm.Chart) -> None:
    manifests = render(chart, {"hostNetwork": True, "webhook": {"port": 10263}})
    spec = pod(manifests)
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"  # Services still resolve
    operator = container(manifests)
    assert operator["args"][operator["args"].index("--webhook-port") + 1] == "10263"
    assert {"name": "webhook", "containerPort": 10263, "protocol": "TCP"} in operator["ports"]
    assert only(manifests, "Service", "jitgrant-webhook")["spec"]["ports"][0]["targetPort"] == "webhook"
    assert "hostNetwork" not in pod(render(chart))


def test_common_labels_mark_every_object_and_the_pod(hatches: list[Manifest]) -> None:
    for manifest in hatches:
        labels = manifest["metadata"].get("labels", {})
        assert labels.get("team") == "platform", (manifest["kind"], manifest["metadata"]["name"])
    assert pod_labels(hatches)["cost-center"] == "sec-42"
    # Selectors stay as they were: a label added later must not orphan the running pod.
    selector = only(hatches, "Deployment")["spec"]["selector"]["matchLabels"]
    assert "team" not in selector


def pod_labels(manifests: list[Manifest]) -> dict[str, str]:
    labels: dict[str, str] = only(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


def test_disruption_budget_and_topology_spread(hatches: list[Manifest], chart: helm.Chart) -> None:
    budget = only(hatches, "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
    assert pod(hatches)["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    kept = only(
        render(chart, {"podDisruptionBudget": {"enabled": True, "minAvailable": 0}}), "PodDisruptionBudget"
    )
    assert kept["spec"] == {**kept["spec"], "minAvailable": 0} and "maxUnavailable" not in kept["spec"]
    # On by default (two replicas), and gone when turned off.
    assert only(render(chart), "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    off = render(chart, {"podDisruptionBudget": {"enabled": False}})
    assert not [m for m in off if m["kind"] == "PodDisruptionBudget"]


def test_an_existing_service_account_is_used_not_created(hatches: list[Manifest], chart: helm.Chart) -> None:
    assert pod(hatches)["serviceAccountName"] == "jitgrant-operator"
    assert ("ServiceAccount", "jitgrant-operator") not in {
        (m["kind"], m["metadata"]["name"]) for m in hatches
    }
    binding = only(hatches, "ClusterRoleBinding", "jitgrant")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "jitgrant-operator", "namespace": NAMESPACE}
    ]
    with pytest.raises(helm.HelmValuesError, match="serviceAccount"):
        chart.render({"serviceAccount": {"create": False}}, name=RELEASE, namespace=NAMESPACE)


def test_global_image_registry_replaces_the_repositorys_registry(chart: helm.Chart) -> None:
    def image(values: dict[str, Any]) -> str:
        manifests = render(chart, values)
        images = {c["image"] for spec in pod_specs(manifests) for c in spec["containers"]}
        assert len(images) == 1, images  # the operator and the uninstall hook pull the same image
        return images.pop()

    assert image({}) == "ghcr.io/jitgrant/jitgrant:0.1.0"
    assert (
        image({"global": {"imageRegistry": "mirror.corp.example"}})
        == "mirror.corp.example/jitgrant/jitgrant:0.1.0"
    )
    assert (
        image({"global": {"imageRegistry": "mirror.corp.example/"}, "image": {"repository": "jitgrant"}})
        == "mirror.corp.example/jitgrant:0.1.0"
    )
    digest = "sha256:" + "b" * 64
    assert (
        image({"global": {"imageRegistry": "localhost:5000"}, "image": {"digest": digest}})
        == f"localhost:5000/jitgrant/jitgrant@{digest}"
    )


def pod_specs(manifests: list[Manifest]) -> list[dict[str, Any]]:
    return [m["spec"]["template"]["spec"] for m in manifests if m["kind"] in ("Deployment", "Job")]


def test_prometheus_rule_links_each_alert_to_its_runbook(hatches: list[Manifest], chart: helm.Chart) -> None:
    rule = only(hatches, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    alerts = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    shipped = yaml.safe_load((CHART_DIR / "files" / "alerts.yaml").read_text())
    assert [r["alert"] for r in alerts] == [r["alert"] for g in shipped["spec"]["groups"] for r in g["rules"]]
    for alert in alerts:
        assert alert["annotations"]["runbook_url"] == (
            "https://github.com/jitgrant/jitgrant/blob/main/docs/metrics.md#" + alert["alert"].lower()
        )
        assert "{{ $labels" in alert["annotations"]["summary"] or alert["annotations"]["summary"]
    own = render(
        chart, {"prometheusRule": {"enabled": True, "runbookBaseUrl": "https://wiki.corp.example/jit/"}}
    )
    urls = {
        r["annotations"]["runbook_url"]
        for g in only(own, "PrometheusRule")["spec"]["groups"]
        for r in g["rules"]
    }
    assert all(url.startswith("https://wiki.corp.example/jit#jitgrant") for url in urls)


def test_grafana_dashboard_configmap_holds_the_dashboard(hatches: list[Manifest]) -> None:
    config_map = only(hatches, "ConfigMap", "jitgrant-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Security"}
    assert config_map["data"]["jitgrant.json"] == (CHART_DIR / "files" / "dashboard.json").read_text().rstrip(
        "\n"
    )


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("extraArgs not a list", {"extraArgs": "--sweep-interval 60"}, "at '/extraArgs': got string, want array"),
    ("extraArgs of numbers", {"extraArgs": [60]}, "at '/extraArgs/0': got number, want string"),
    ("extraEnv without a name", {"extraEnv": [{"value": "x"}]}, "at '/extraEnv/0': missing property 'name'"),
    ("extraEnv as a map", {"extraEnv": {"A": "b"}}, "at '/extraEnv': got object, want array"),
    (
        "volume without a name",
        {"extraVolumes": [{"emptyDir": {}}]},
        "at '/extraVolumes/0': missing property 'name'",
    ),
    (
        "relative mount path",
        {"extraVolumeMounts": [{"name": "x", "mountPath": "etc/x"}]},
        "at '/extraVolumeMounts/0/mountPath'",
    ),
    ("hostNetwork as a string", {"hostNetwork": "true"}, "at '/hostNetwork': got string, want boolean"),
    (
        "log level",
        {"logLevel": "verbose"},
        "at '/logLevel': value must be one of 'debug', 'info', 'warning', 'error'",
    ),
    ("log format", {"logFormat": "logfmt"}, "at '/logFormat': value must be one of 'text', 'json'"),
    ("common label value", {"commonLabels": {"team": 7}}, "at '/commonLabels/team': got number, want string"),
    (
        "common label jitgrant",
        {"commonLabels": {"jitgrant": "x"}},
        "at '/commonLabels/jitgrant': value must be 'not a common label: it marks the grant objects",
    ),
    (
        "pdb both",
        {"podDisruptionBudget": {"enabled": True, "minAvailable": 1, "maxUnavailable": 1}},
        "at '/podDisruptionBudget'",
    ),
    (
        "pdb percent",
        {"podDisruptionBudget": {"enabled": True, "maxUnavailable": "half"}},
        "at '/podDisruptionBudget/maxUnavailable'",
    ),
    (
        "spread without a key",
        {"topologySpreadConstraints": [{"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}]},
        "missing property 'topologyKey'",
    ),
    (
        "service account create",
        {"serviceAccount": {"create": "no"}},
        "at '/serviceAccount/create': got string, want boolean",
    ),
    ("existing SA unnamed", {"serviceAccount": {"create": False, "name": ""}}, "at '/serviceAccount/name'"),
    (
        "rule not boolean",
        {"prometheusRule": {"enabled": 1}},
        "at '/prometheusRule/enabled': got number, want boolean",
    ),
    (
        "runbook not a URL",
        {"prometheusRule": {"enabled": True, "runbookBaseUrl": "docs/metrics.md"}},
        "at '/prometheusRule/runbookBaseUrl'",
    ),
    (
        "dashboard label",
        {"grafanaDashboard": {"enabled": True, "labels": {"grafana_dashboard": 1}}},
        "at '/grafanaDashboard/labels/grafana_dashboard'",
    ),
    ("registry with scheme", {"global": {"imageRegistry": "https://mirror"}}, "at '/global/imageRegistry'"),
    (
        "unknown global",
        {"global": {"storageClass": "gp3"}},
        "additional properties 'storageClass' not allowed",
    ),
]


@pytest.mark.parametrize(("case", "values", "message"), REFUSED, ids=[case for case, _, _ in REFUSED])
def test_wrong_types_are_refused_naming_the_key(
    chart: helm.Chart, case: str, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as refused:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    assert message in str(refused.value)


def undescribed(node: Any, path: str = "") -> list[str]:
    """Every property (at any depth, in every branch) without a description."""
    if not isinstance(node, dict):
        return []
    missing = []
    for key, value in node.get("properties", {}).items():
        where = f"{path}/{key}"
        if isinstance(value, dict) and not value.get("description"):
            missing.append(where)
        missing += undescribed(value, where)
    for key in ("items", "additionalProperties"):
        missing += undescribed(node.get(key), f"{path}/{key}")
    missing += undescribed(node.get("then"), path)
    for key in ("allOf", "anyOf", "oneOf"):
        for branch in node.get(key, []):
            missing += undescribed(branch, path)
    return missing


def test_every_key_of_the_schema_has_a_description(chart: helm.Chart) -> None:
    assert chart.schema is not None
    assert undescribed(chart.schema) == []


def test_every_value_in_values_yaml_is_in_the_schema(chart: helm.Chart) -> None:
    """values.yaml and the schema name the same keys: nothing documented is refused, nothing accepted
    is undocumented."""
    assert chart.schema is not None
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert set(defaults) | {"global"} == set(chart.schema["properties"]) | {"global"}
    for key, value in defaults.items():
        declared = chart.schema["properties"][key]
        if isinstance(value, dict) and declared.get("additionalProperties") is False:
            assert set(value) <= set(declared["properties"]), key
