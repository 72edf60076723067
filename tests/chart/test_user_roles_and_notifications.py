"""The chart's requester/approver ClusterRoles (the same file the playground binds) and its
notifications: a ConfigMap the operator parses, URLs only from Secrets, nothing without notifiers."""

from __future__ import annotations

import re

import helm_python as helm
import yaml

from jitgrant.notify import NotifyConfig
from jitgrant_testing.playground import chart_user_cluster_roles

from .conftest import ROOT, only, render

NOTIFIERS = {
    "notifications": {
        "notifiers": [
            {
                "name": "sre-slack",
                "type": "slack",
                "urlSecret": {"name": "slack-hook"},
                "events": ["pending"],
            },
            {"name": "audit-hook", "type": "webhook", "urlSecret": {"name": "hooks", "key": "audit"}},
        ]
    }
}


def test_the_requester_and_approver_roles_ship_and_the_playground_binds_the_same_rules(
    chart: helm.Chart,
) -> None:
    manifests = render(chart)
    for role in chart_user_cluster_roles():
        rendered = only(manifests, "ClusterRole", role["metadata"]["name"])
        assert rendered["rules"] == role["rules"]
    requester = only(manifests, "ClusterRole", "jitgrant-requester")
    assert requester["rules"] == [
        {
            "apiGroups": ["jitgrant.dev"],
            "resources": ["accessrequests"],
            "verbs": ["create", "get", "list", "watch", "patch"],
        }
    ]
    names = [m["metadata"]["name"] for m in render(chart, {"userClusterRoles": {"enabled": False}})]
    assert "jitgrant-requester" not in names and "jitgrant-approver" not in names


def test_notifiers_render_a_config_the_operator_reads_with_urls_from_secrets(chart: helm.Chart) -> None:
    assert not [m for m in render(chart) if m["metadata"]["name"].endswith("-notify")]
    manifests = render(chart, NOTIFIERS)
    config_map = only(manifests, "ConfigMap", "jitgrant-notify")
    config = NotifyConfig.model_validate(yaml.safe_load(config_map["data"]["config.yaml"]))
    assert [(n.name, n.type, str(n.url_file)) for n in config.notifiers] == [
        ("sre-slack", "slack", "/etc/jitgrant/notify/secrets/sre-slack/url"),
        ("audit-hook", "webhook", "/etc/jitgrant/notify/secrets/audit-hook/url"),
    ]
    assert [e.value for e in config.notifiers[0].events] == ["pending"]
    pod = only(manifests, "Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    args = container["args"]
    assert args[args.index("--notify-config") + 1] == "/etc/jitgrant/notify/config.yaml"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["notify-url-sre-slack"] == "/etc/jitgrant/notify/secrets/sre-slack"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["notify-url-audit-hook"]["secret"] == {
        "secretName": "hooks",
        "defaultMode": 0o440,
        "items": [{"key": "audit", "path": "url"}],
    }


def test_the_readme_s_cluster_role_is_grantable_with_the_values_install_md_gives(chart: helm.Chart) -> None:
    """The README's ClusterRole is not the chart's (examples/oncall-restart creates it), so it is not
    a default (issue 23); docs/install.md says how to add it, and doing so makes it bindable."""
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"clusterRole: (jit-[a-z-]+)", readme))
    assert named == {"jit-restart-checkout"}
    assert not named & set(chart.values["grantableClusterRoles"])
    install = (ROOT / "docs" / "install.md").read_text()
    given = re.search(r"--set 'grantableClusterRoles=\{([a-z,-]+)\}'", install)
    assert given, "docs/install.md no longer says how to make the README's ClusterRole grantable"
    roles = given.group(1).split(",")
    assert named <= set(roles)
    rendered = render(chart, {"grantableClusterRoles": roles})
    binds = [
        rule["resourceNames"]
        for role in rendered
        if role["kind"] == "ClusterRole"
        for rule in role.get("rules", [])
        if "bind" in rule.get("verbs", [])
    ]
    assert binds == [roles]


def test_applying_an_example_directory_files_no_request() -> None:
    """`kubectl apply -f examples/oncall-restart/` installs a policy, never a request as the admin."""
    for directory in sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir() and p.name != "requests"):
        for path in directory.glob("*.yaml"):
            kinds = {doc.get("kind") for doc in yaml.safe_load_all(path.read_text()) if doc}
            assert "AccessRequest" not in kinds, path
    assert sorted(p.name for p in (ROOT / "examples" / "requests").glob("*.yaml")) == [
        "restart-checkout-prod.yaml",
        "restart-checkout.yaml",
    ]
