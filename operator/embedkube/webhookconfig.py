"""Mutating/ValidatingWebhookConfiguration defaults and validation, as admissionregistration/v1 does.

Upstream refuses a configuration the API server could not call correctly (a plain-HTTP URL, no
sideEffects, an unknown operation, a timeout over 30 s, ...) with 422, and defaults matchPolicy,
timeoutSeconds, failurePolicy, the selectors, rule scope and (mutating) reinvocationPolicy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .errors import Cause

_QUALIFIED_DOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")
_OPERATIONS = {"CREATE", "UPDATE", "DELETE", "CONNECT", "*"}
_SELECTOR_OPS = {"In", "NotIn", "Exists", "DoesNotExist"}


def default_webhook_configuration(obj: dict[str, Any], *, mutating: bool) -> None:
    for hook in obj.get("webhooks") or []:
        if not isinstance(hook, dict):
            continue
        hook.setdefault("failurePolicy", "Fail")
        hook.setdefault("matchPolicy", "Equivalent")
        hook.setdefault("timeoutSeconds", 10)
        hook.setdefault("namespaceSelector", {})
        hook.setdefault("objectSelector", {})
        if mutating:
            hook.setdefault("reinvocationPolicy", "Never")
        for rule in hook.get("rules") or []:
            if isinstance(rule, dict):
                rule.setdefault("scope", "*")


def _invalid(field: str, value: Any, why: str) -> Cause:
    return Cause(field, "FieldValueInvalid", f"Invalid value: {value!r}: {why}")


def _required(field: str, why: str) -> Cause:
    return Cause(field, "FieldValueRequired", f"Required value: {why}")


def _unsupported(field: str, value: Any, allowed: list[str]) -> Cause:
    shown = ", ".join(f'"{a}"' for a in allowed)
    return Cause(field, "FieldValueNotSupported", f'Unsupported value: "{value}": supported values: {shown}')


def _client_causes(config: Mapping[str, Any], field: str) -> list[Cause]:
    url, service = config.get("url"), config.get("service")
    if (url is None) == (service is None):
        return [_required(field, "exactly one of url or service is required")]
    if url is not None:
        parts = urlsplit(str(url))
        causes = []
        if parts.scheme != "https":
            causes.append(_invalid(f"{field}.url", url, "'https' is the only allowed URL scheme"))
        if not parts.hostname:
            causes.append(_invalid(f"{field}.url", url, "host must be specified"))
        if parts.username or parts.password:
            causes.append(_invalid(f"{field}.url", url, "user information is not permitted in the URL"))
        if parts.fragment or str(url).endswith("#"):
            causes.append(_invalid(f"{field}.url", url, "fragments are not permitted in the URL"))
        if parts.query or "?" in str(url):
            causes.append(_invalid(f"{field}.url", url, "query parameters are not permitted in the URL"))
        return causes
    causes = []
    if not isinstance(service, Mapping):
        return [_required(f"{field}.service", "service must be an object")]
    for key in ("name", "namespace"):
        if not service.get(key):
            causes.append(_required(f"{field}.service.{key}", f"service {key} is required"))
    path = service.get("path")
    if path is not None and not str(path).startswith("/"):
        causes.append(_invalid(f"{field}.service.path", path, "must start with a '/'"))
    port = service.get("port", 443)
    if not isinstance(port, int) or not 1 <= port <= 65535:
        causes.append(
            _invalid(f"{field}.service.port", port, "port is not valid: must be between 1 and 65535")
        )
    return causes


def _rule_causes(rule: Mapping[str, Any], field: str) -> list[Cause]:
    causes = []
    for key in ("apiGroups", "apiVersions", "resources", "operations"):
        if not rule.get(key):
            causes.append(_required(f"{field}.{key}", f"{key} must not be empty"))
    for op in rule.get("operations") or []:
        if op not in _OPERATIONS:
            causes.append(_unsupported(f"{field}.operations", op, sorted(_OPERATIONS)))
    scope = rule.get("scope", "*")
    if scope not in ("Cluster", "Namespaced", "*"):
        causes.append(_unsupported(f"{field}.scope", scope, ["*", "Cluster", "Namespaced"]))
    return causes


def _selector_causes(selector: Any, field: str) -> list[Cause]:
    if not isinstance(selector, Mapping):
        return []
    return [
        _unsupported(f"{field}.matchExpressions[{i}].operator", expr.get("operator"), sorted(_SELECTOR_OPS))
        for i, expr in enumerate(selector.get("matchExpressions") or [])
        if isinstance(expr, Mapping) and expr.get("operator") not in _SELECTOR_OPS
    ]


def webhook_configuration_causes(obj: Mapping[str, Any], *, mutating: bool) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, hook in enumerate(obj.get("webhooks") or []):
        field = f"webhooks[{i}]"
        if not isinstance(hook, Mapping):
            causes.append(_invalid(field, hook, "must be an object"))
            continue
        name = str(hook.get("name") or "")
        if not _QUALIFIED_DOMAIN.match(name):
            causes.append(
                _invalid(
                    f"{field}.name", name, "should be a domain with at least three segments separated by dots"
                )
            )
        elif name in seen:
            causes.append(Cause(f"{field}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"'))
        seen.add(name)
        versions = hook.get("admissionReviewVersions")
        if not versions:
            causes.append(_required(f"{field}.admissionReviewVersions", "must specify one of v1, v1beta1"))
        elif not set(versions) & {"v1", "v1beta1"}:
            causes.append(
                _invalid(
                    f"{field}.admissionReviewVersions", versions, "must include at least one of v1, v1beta1"
                )
            )
        side_effects = hook.get("sideEffects")
        if side_effects is None:
            causes.append(_required(f"{field}.sideEffects", "must specify one of None, NoneOnDryRun"))
        elif side_effects not in ("None", "NoneOnDryRun"):
            causes.append(_unsupported(f"{field}.sideEffects", side_effects, ["None", "NoneOnDryRun"]))
        if hook.get("failurePolicy") not in ("Fail", "Ignore"):
            causes.append(
                _unsupported(f"{field}.failurePolicy", hook.get("failurePolicy"), ["Fail", "Ignore"])
            )
        if hook.get("matchPolicy") not in ("Exact", "Equivalent"):
            causes.append(
                _unsupported(f"{field}.matchPolicy", hook.get("matchPolicy"), ["Equivalent", "Exact"])
            )
        if mutating and hook.get("reinvocationPolicy") not in ("Never", "IfNeeded"):
            causes.append(
                _unsupported(
                    f"{field}.reinvocationPolicy", hook.get("reinvocationPolicy"), ["IfNeeded", "Never"]
                )
            )
        timeout = hook.get("timeoutSeconds")
        if not isinstance(timeout, int) or not 1 <= timeout <= 30:
            causes.append(
                _invalid(
                    f"{field}.timeoutSeconds", timeout, "the timeout value must be between 1 and 30 seconds"
                )
            )
        causes += _client_causes(hook.get("clientConfig") or {}, f"{field}.clientConfig")
        for j, rule in enumerate(hook.get("rules") or []):
            if isinstance(rule, Mapping):
                causes += _rule_causes(rule, f"{field}.rules[{j}]")
        causes += _selector_causes(hook.get("namespaceSelector"), f"{field}.namespaceSelector")
        causes += _selector_causes(hook.get("objectSelector"), f"{field}.objectSelector")
    return causes
