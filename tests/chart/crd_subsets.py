"""Schemas for the non-Kubernetes kinds the chart renders: the parts of the upstream CRDs
(cert-manager.io/v1, monitoring.coreos.com/v1) that the chart uses, with the same field names,
types and required fields. kubernetes-validate ships no schemas for them, and there is no
network here to fetch the CRDs; unknown fields are refused, so a typo still fails."""

from __future__ import annotations

from typing import Any

_METADATA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}


def _kind(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        "additionalProperties": False,
    }


_DURATION = {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$"}

_ISSUER_SPEC: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 1,
    "properties": {"selfSigned": {"type": "object"}, "ca": {"type": "object", "required": ["secretName"]}},
    "additionalProperties": False,
}

_CERTIFICATE_SPEC: dict[str, Any] = {
    "type": "object",
    "required": ["secretName", "issuerRef"],
    "properties": {
        "secretName": {"type": "string"},
        "duration": _DURATION,
        "renewBefore": _DURATION,
        "commonName": {"type": "string", "maxLength": 64},
        "dnsNames": {"type": "array", "items": {"type": "string"}},
        "privateKey": {
            "type": "object",
            "properties": {
                "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                "size": {"type": "integer"},
                "rotationPolicy": {"enum": ["Never", "Always"]},
            },
            "additionalProperties": False,
        },
        "usages": {
            "type": "array",
            "items": {"enum": ["server auth", "client auth", "digital signature", "key encipherment"]},
        },
        "issuerRef": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "kind": {"type": "string"},
                "group": {"type": "string"},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

_SERVICE_MONITOR_SPEC: dict[str, Any] = {
    "type": "object",
    "required": ["selector", "endpoints"],
    "properties": {
        "selector": {
            "type": "object",
            "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
            "additionalProperties": False,
        },
        "namespaceSelector": {
            "type": "object",
            "properties": {
                "matchNames": {"type": "array", "items": {"type": "string"}},
                "any": {"type": "boolean"},
            },
            "additionalProperties": False,
        },
        "endpoints": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "port": {"type": "string"},
                    "path": {"type": "string"},
                    "scheme": {"enum": ["http", "https"]},
                    "interval": _DURATION,
                    "scrapeTimeout": _DURATION,
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}

# PrometheusRule (monitoring.coreos.com/v1) as its CRD declares rules.
_PROMETHEUS_RULE_SPEC: dict[str, Any] = {
    "type": "object",
    "required": ["groups"],
    "properties": {
        "groups": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "rules"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "interval": _DURATION,
                    "rules": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["expr"],
                            "properties": {
                                "alert": {"type": "string"},
                                "record": {"type": "string"},
                                "expr": {"type": "string", "minLength": 1},
                                "for": _DURATION,
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                            },
                            "additionalProperties": False,
                        },
                    },
                },
                "additionalProperties": False,
            },
        }
    },
    "additionalProperties": False,
}

SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "PrometheusRule"): _kind(
        "monitoring.coreos.com/v1", "PrometheusRule", _PROMETHEUS_RULE_SPEC
    ),
    ("cert-manager.io/v1", "Issuer"): _kind("cert-manager.io/v1", "Issuer", _ISSUER_SPEC),
    ("cert-manager.io/v1", "Certificate"): _kind("cert-manager.io/v1", "Certificate", _CERTIFICATE_SPEC),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _kind(
        "monitoring.coreos.com/v1", "ServiceMonitor", _SERVICE_MONITOR_SPEC
    ),
}
