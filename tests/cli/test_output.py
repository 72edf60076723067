"""-o json|yaml|name|jsonpath: kubectl's shapes, so scripts written for kubectl read ours."""

from __future__ import annotations

import argparse
import json

import pytest
import yaml

from jitgrant.cli.describe import Paint, describe_request
from jitgrant.cli.kubeconfig import CliError
from jitgrant.cli.output import as_list, jsonpath, output_format, render_structured

ITEMS = [
    {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": name, "namespace": "agents", "labels": {"team": team}},
        "status": {"phase": phase},
        "spec": {"rules": [{"verbs": ["get", "patch"]}]},
    }
    for name, team, phase in (("a", "payments", "Active"), ("b", "orders", "Pending"))
]


def test_a_list_prints_as_kind_list_in_json_and_yaml() -> None:
    listed = as_list(ITEMS, resource_version="42")
    as_json = json.loads(render_structured(listed, "json") or "")
    assert as_json == {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": "42"},
        "items": ITEMS,
    }
    assert yaml.safe_load(render_structured(listed, "yaml") or "") == as_json
    assert render_structured(listed, "name") == "accessrequest.jitgrant.dev/a\naccessrequest.jitgrant.dev/b\n"
    assert render_structured(ITEMS[0], "name") == "accessrequest.jitgrant.dev/a\n"
    assert render_structured(listed, "table") is None and render_structured(listed, "wide") is None


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{.items[*].metadata.name}", "a b"),
        ("{.items[0].status.phase}", "Active"),
        ("{.items[-1].metadata.labels.team}", "orders"),
        ('{range .items[*]}{.metadata.name}={.status.phase}{"\\n"}{end}', "a=Active\nb=Pending\n"),
        ("{.items[1].spec.rules[0].verbs}", '["get", "patch"]'),
        ("{..phase}", "Active Pending"),
        (".items[0].metadata.name", "a"),
        ("names: {.items[*].metadata.name}!", "names: a b!"),
        ("{.items[*].nothing}", ""),
    ],
)
def test_jsonpath_templates_render_as_kubectl_does(template: str, expected: str) -> None:
    assert jsonpath(template, as_list(ITEMS)) == expected


def test_a_bad_output_format_or_template_names_what_is_accepted() -> None:
    with pytest.raises(
        argparse.ArgumentTypeError, match=r"unknown output format 'xml' \(allowed: table, wide"
    ):
        output_format("xml")
    with pytest.raises(argparse.ArgumentTypeError, match="jsonpath= needs a template"):
        output_format("jsonpath=")
    with pytest.raises(CliError, match=r"jsonpath: cannot parse '\.items\[x' at '\[x'"):
        jsonpath("{.items[x}", as_list(ITEMS))


REQUEST = {
    "metadata": {"name": "r", "namespace": "agents"},
    "spec": {
        "policy": "p",
        "namespace": "payments",
        "justification": "INC-9 leak",
        "requester": {"username": "system:serviceaccount:agents:bot"},
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["create"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["get"]},
            {
                "apiGroups": ["apps"],
                "resources": ["deployments"],
                "verbs": ["*"],
                "resourceNames": ["checkout"],
            },
        ],
    },
    "status": {"phase": "Pending", "approvals": [{"approver": "alice"}]},
}
POLICY = {"approval": {"required": True, "minApprovals": 2, "approvers": {"groups": ["sre-oncall"]}}}


def test_the_approver_sees_dangerous_entries_in_red_only_on_a_terminal() -> None:
    plain = describe_request(
        REQUEST, cluster_role_rules=None, cluster_role_error=None, policy_spec=POLICY, paint=Paint(False)
    )
    assert "\x1b[" not in plain
    assert "Requester:      system:serviceaccount:agents:bot" in plain
    assert "Justification:  INC-9 leak" in plain
    assert "  - get on secrets (core)" in plain
    assert "  - * on deployments (apps) named checkout" in plain
    assert "  ! resource 'secrets': exposes credentials" in plain
    assert "  ! verb '*': is a wildcard" in plain
    # The policy engine's list, atom by atom: creating RoleBindings is dangerous, reading them is not.
    assert "  ! resource 'rolebindings': create writes RBAC that outlives the grant" in plain
    assert "  - get on rolebindings (rbac.authorization.k8s.io)" in plain
    assert "Approvals:      1 of 2, 1 missing (approvers: groups sre-oncall)" in plain
    assert "Duration:       the policy's default" not in plain  # the policy is readable: its value
    coloured = describe_request(
        REQUEST, cluster_role_rules=None, cluster_role_error=None, policy_spec=POLICY, paint=Paint(True)
    )
    assert "\x1b[31m\x1b[1msecrets\x1b[0m" in coloured
    assert "deployments" in coloured and "\x1b[31m\x1b[1mdeployments" not in coloured


def test_colour_only_when_the_stream_is_a_terminal() -> None:
    import io
    import os

    assert not Paint.for_stream(io.StringIO()).enabled
    primary, secondary = os.openpty()
    try:
        with os.fdopen(secondary, "w") as terminal:
            assert Paint.for_stream(terminal).enabled
    finally:
        os.close(primary)
