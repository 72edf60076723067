"""Namespaces by label (issue 31 §4): `spec.namespaceSelector` beside `spec.namespaces`.

A policy says "namespaces labelled team=payments" instead of listing each one. The selector is matched
against the Namespace's labels as they are when the request is admitted, again at activation, and
while the grant lasts: the handlers read the labels (from the operator's Namespace watch, or a GET) and
`policy_for_namespace` turns the selector into the one namespace it decides about, by adding that
namespace to the policy's `namespaces` when its labels match. Everything after it (`decide`, the dry
run, continuous authorization) then reads the policy as if the namespace were listed, so a label
removed during a grant ends it exactly as a narrowed policy does (`PolicyChanged`).

System namespaces (kube-system, kube-public, kube-node-lease and the operator's own) are never
selected, whatever their labels: a label is cheaper to add than a policy is to edit, and who may label
namespaces is an RBAC question the policy author may not control. List one by name to allow it.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from jitgrant.models import GrantPolicySpec
from jitgrant.models.policy import LabelSelector, SelectorOperator
from jitgrant.policy.dangerous import is_system_namespace


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes' LabelSelector semantics: every matchLabels pair and every requirement hold."""
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    for item in selector.match_expressions:
        present = item.key in labels
        if item.operator is SelectorOperator.IN and not (present and labels[item.key] in item.values):
            return False
        if item.operator is SelectorOperator.NOT_IN and present and labels[item.key] in item.values:
            return False
        if item.operator is SelectorOperator.EXISTS and not present:
            return False
        if item.operator is SelectorOperator.DOES_NOT_EXIST and present:
            return False
    return True


def selects(
    policy: GrantPolicySpec, namespace: str, labels: Mapping[str, str] | None, *, operator_namespace: str
) -> bool:
    """Whether the policy's namespaceSelector admits this namespace with these labels (None: the
    namespace does not exist, or its labels could not be read: not selected)."""
    selector = policy.namespace_selector
    if selector is None or labels is None or is_system_namespace(namespace, operator_namespace):
        return False
    return selector_matches(selector, labels)


def policy_for_namespace(
    policy: GrantPolicySpec, namespace: str, labels: Mapping[str, str] | None, *, operator_namespace: str
) -> GrantPolicySpec:
    """The policy as it applies to one namespace: its selector resolved against the namespace's live
    labels. Unchanged when it has no selector, lists the namespace already, or does not select it."""
    if namespace in policy.namespaces or not selects(
        policy, namespace, labels, operator_namespace=operator_namespace
    ):
        return policy
    return policy.model_copy(update={"namespaces": (*policy.namespaces, namespace)})
