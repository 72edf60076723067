"""CustomResourceDefinitions generated from the models, so the schema the API server enforces and
the schema the operator parses cannot drift apart. `make crds` writes them to crds/; a test fails
when crds/ is stale."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from jitgrant.models.base import API_GROUP, API_VERSION
from jitgrant.models.policy import GrantPolicySpec, GrantPolicyStatus, TargetType
from jitgrant.models.request import AccessRequestSpec, AccessRequestStatus

# Keywords pydantic emits that a structural schema either forbids or that we do not want the API
# server to act on (defaults are applied by the operator from the models, in one place).
_DROPPED_KEYWORDS = frozenset({"title", "default", "$defs"})

# Rules the API server evaluates itself, so a bad or changed object is refused at the door.
SPEC_IMMUTABLE_RULE = {
    "rule": "self == oldSelf",
    "message": "spec is immutable after creation; create a new AccessRequest instead",
}
EXACTLY_ONE_RULE = {
    "rule": "has(self.clusterRole) != has(self.rules)",
    "message": "set exactly one of clusterRole or rules",
}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline `$ref`s, fold `anyOf [X, null]` into X and drop keywords structural schemas refuse."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**copy.deepcopy(target), **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    if "anyOf" in node:
        options = [option for option in node["anyOf"] if option.get("type") != "null"]
        if len(options) == 1:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            return _resolve({**options[0], **rest}, defs)
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYWORDS:
            continue
        if key == "additionalProperties" and value is False:
            continue  # structural schemas prune unknown fields instead
        if key == "const":
            result["enum"] = [value]
            continue
        if key == "properties":
            result[key] = {name: _resolve(prop, defs) for name, prop in value.items()}
            continue
        result[key] = _resolve(value, defs)
    return result


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = _resolve(raw, raw.get("$defs", {}))
    return schema


def _grant_policy_spec_schema() -> dict[str, Any]:
    spec = openapi_schema(GrantPolicySpec)
    # The API server fills these two in (the same values the models default to), so `kubectl get gp`
    # shows Target and Approval for a policy that leaves them out instead of empty cells.
    props = spec["properties"]
    props["target"]["default"] = {}
    props["target"]["properties"]["type"]["default"] = str(TargetType.IN_CLUSTER)
    props["approval"]["default"] = {}
    props["approval"]["properties"]["required"]["default"] = False
    grants = spec["properties"]["grants"]["items"]
    grants["x-kubernetes-validations"] = [
        {
            "rule": "has(self.clusterRole) != has(self.rules)",
            "message": "each grants entry needs exactly one of clusterRole or rules",
        }
    ]
    return spec


def _access_request_spec_schema() -> dict[str, Any]:
    spec = openapi_schema(AccessRequestSpec)
    spec["x-kubernetes-validations"] = [SPEC_IMMUTABLE_RULE, EXACTLY_ONE_RULE]
    return spec


def _crd(
    *,
    kind: str,
    plural: str,
    short_names: list[str],
    scope: str,
    spec: dict[str, Any],
    status: dict[str, Any] | None,
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": spec,
    }
    if status is not None:
        properties["status"] = status
    version: dict[str, Any] = {
        "name": API_VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": {"type": "object", "required": ["spec"], "properties": properties}},
        "additionalPrinterColumns": columns,
    }
    if status is not None:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["jitgrant"],
            },
            "versions": [version],
        },
    }


def _wide(name: str, kind: str, path: str) -> dict[str, Any]:
    """A column kubectl shows only with `-o wide` (priority 1)."""
    return {"name": name, "type": kind, "jsonPath": path, "priority": 1}


def grant_policy_crd() -> dict[str, Any]:
    return _crd(
        kind="GrantPolicy",
        plural="grantpolicies",
        short_names=["gp"],
        scope="Cluster",
        spec=_grant_policy_spec_schema(),
        status=openapi_schema(GrantPolicyStatus),
        columns=[
            # Written by the operator: each ClusterRole exists and is bindable, nothing widened.
            {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
            {"name": "Target", "type": "string", "jsonPath": ".spec.target.type"},
            {"name": "Approval", "type": "boolean", "jsonPath": ".spec.approval.required"},
            # By whom (groups; named users with -o wide).
            {"name": "Approvers", "type": "string", "jsonPath": ".spec.approval.approvers.groups"},
            {"name": "Max", "type": "string", "jsonPath": ".spec.maxDuration"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            # -o wide: named approvers, how many, and where.
            _wide("Approver Users", "string", ".spec.approval.approvers.users"),
            _wide("Min Approvals", "integer", ".spec.approval.minApprovals"),
            _wide("Namespaces", "string", ".spec.namespaces"),
        ],
    )


def access_request_crd() -> dict[str, Any]:
    return _crd(
        kind="AccessRequest",
        plural="accessrequests",
        short_names=["ar"],
        scope="Namespaced",
        spec=_access_request_spec_schema(),
        status=openapi_schema(AccessRequestStatus),
        columns=[
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Requester", "type": "string", "jsonPath": ".spec.requester.username"},
            {"name": "Policy", "type": "string", "jsonPath": ".spec.policy"},
            {"name": "Target Namespace", "type": "string", "jsonPath": ".spec.namespace"},
            # A string, not `type: date`: kubectl renders a date column as time elapsed, and a time
            # in the future (every live grant's expiry) as `<invalid>`. The timestamp is exact.
            {"name": "Expires", "type": "string", "jsonPath": ".status.expiresAt"},
            {"name": "Reason", "type": "string", "jsonPath": ".status.reason"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            _wide("Cluster Role", "string", ".spec.clusterRole"),
            _wide("Duration", "string", ".spec.duration"),
            _wide("Justification", "string", ".spec.justification"),
            _wide("Message", "string", ".status.message"),
        ],
    )


def all_crds() -> dict[str, dict[str, Any]]:
    """File name in crds/ -> CRD manifest."""
    return {
        "jitgrant.dev_grantpolicies.yaml": grant_policy_crd(),
        "jitgrant.dev_accessrequests.yaml": access_request_crd(),
    }
