"""The example dashboard and alerts query only series the operator exports, with their real
labels and bucket bounds, and the alerts the issue asks for exist."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from jitgrant.metrics import Metrics

from .conftest import ROOT

MONITORING = ROOT / "examples" / "monitoring"
# Grafana's own variables and PromQL's aggregation keywords are not series.
METRIC_NAME = re.compile(r"\bjitgrant_[a-z_]+\b")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
LE_MATCHER = re.compile(r'le\s*=~\s*"((?:[^"\\]|\\.)*)"')


def exported() -> dict[str, set[str]]:
    """Every sample name the operator exports -> the labels it carries."""
    metrics = Metrics()
    metrics.request_outcome(policy="p", outcome="requested")
    metrics.grant_activated("c")
    metrics.observe_time_to_active(policy="p", seconds=1)
    metrics.observe_approval_wait(policy="p", seconds=1)
    metrics.observe_revocation_lag(cluster="c", seconds=1)
    metrics.audit_delivery_failed(sink="s")
    metrics.agent_calls_refused(policy="p", count=1)
    metrics.set_audit_spool_depth(1)
    metrics.reconcile_error(handler="h")
    metrics.set_removal_overdue(cluster="c", count=1)
    metrics.set_target_reachable(cluster="c", reachable=False)
    metrics.track_request("uid", policy="p", phase="Pending")
    metrics.observe_webhook(
        webhook="w", operation="CREATE", outcome="refused", reason="Forbidden", seconds=0.1
    )
    metrics.watch_audit_sinks(last_errors=lambda: {"s": None}, undelivered=lambda: {"s": 0})
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def revocation_bucket_bounds() -> list[str]:
    metrics = Metrics()
    metrics.observe_revocation_lag(cluster="c", seconds=1)
    return [
        sample.labels["le"]
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
        if sample.name == "jitgrant_revocation_lag_seconds_bucket"
    ]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    assert document["apiVersion"] == "monitoring.coreos.com/v1"
    assert document["kind"] == "PrometheusRule"
    return [rule for group in document["spec"]["groups"] for rule in group["rules"]]


def all_exprs() -> list[str]:
    return dashboard_exprs() + [rule["expr"] for rule in alert_rules()]


def unescape_promql(literal: str) -> str:
    """A PromQL double-quoted string's value (backslash escapes as in Go)."""
    return re.sub(r"\\(.)", r"\1", literal)


@pytest.mark.parametrize("expr", all_exprs())
def test_queries_name_only_exported_series_and_labels(expr: str) -> None:
    series = exported()
    labels = {label for names in series.values() for label in names}
    used = METRIC_NAME.findall(expr)
    assert used, expr
    for name in used:
        assert name in series, f"{name} is not exported (known: {sorted(series)})"
    for group in GROUPING.findall(expr):
        for label in filter(None, (part.strip() for part in group.split(","))):
            assert label in labels, f"{label} is not a label of any jitgrant series"
    assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")
    assert expr.count("[") == expr.count("]")


@pytest.mark.parametrize("expr", [e for e in all_exprs() if LE_MATCHER.search(e)])
def test_bucket_matchers_hit_exactly_one_real_bound(expr: str) -> None:
    """`le` as prometheus_client writes it ("60.0") and as Prometheus 3 normalises it ("60")."""
    bounds = revocation_bucket_bounds()
    for literal in LE_MATCHER.findall(expr):
        pattern = re.compile(unescape_promql(literal))
        assert [b for b in bounds if pattern.fullmatch(b)] == ["60.0"]
        assert pattern.fullmatch("60")
        assert not pattern.fullmatch("600.0")


def test_the_alerts_the_issue_names_exist() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert "jitgrant_revocation_lag_seconds" in rules["JitgrantRevocationLate"]["expr"]
    assert "jitgrant_revocation_lag_seconds" in rules["JitgrantRevocationLagHigh"]["expr"]
    assert "jitgrant_audit_delivery_failures_total" in rules["JitgrantAuditDeliveryFailing"]["expr"]
    assert "jitgrant_active_grants" in rules["JitgrantGrantsStuckActive"]["expr"]
    # While a removal is overdue, within a minute: no `for` to wait out, no window to average over.
    overdue = rules["JitgrantRemovalOverdue"]
    assert overdue["expr"] == "max by (cluster) (jitgrant_removal_overdue_grants) > 0"
    assert "for" not in overdue and overdue["labels"]["severity"] == "critical"
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        if "for" in rule:
            assert re.fullmatch(r"[0-9]+[smh]", rule["for"]), name


def test_dashboard_is_importable_and_covers_every_series() -> None:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 36
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert {"datasource", "cluster", "policy"} <= variables
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    queried = {name for expr in dashboard_exprs() for name in METRIC_NAME.findall(expr)}
    # process_* and python_info come with prometheus_client; the dashboard shows jitgrant's own.
    families = {
        re.sub(r"_(bucket|count|sum)$", "", name) for name in exported() if name.startswith("jitgrant_")
    }
    assert {re.sub(r"_(bucket|count|sum)$", "", name) for name in queried} == families


def github_anchors(markdown: str) -> set[str]:
    """Heading anchors as GitHub makes them: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_every_alert_links_its_runbook_section_in_docs_metrics() -> None:
    anchors = github_anchors((ROOT / "docs" / "metrics.md").read_text())
    for rule in alert_rules():
        url = rule["annotations"].get("runbook_url", "")
        page, _, anchor = url.partition("#")
        assert page.endswith("/docs/metrics.md"), (rule["alert"], url)
        assert anchor == rule["alert"].lower() and anchor in anchors, (rule["alert"], url)


def test_the_chart_ships_the_same_alerts_and_dashboard() -> None:
    files = ROOT / "charts" / "jitgrant" / "files"
    for name in ("alerts.yaml", "dashboard.json"):
        assert (files / name).read_bytes() == (MONITORING / name).read_bytes(), (
            f"charts/jitgrant/files/{name} differs from examples/monitoring/{name}: copy it over"
        )
