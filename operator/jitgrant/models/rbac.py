"""RBAC rule shapes as they appear in Role/ClusterRole objects and in jitgrant resources."""

from __future__ import annotations

from pydantic import Field

from jitgrant.models.base import WireModel


class PolicyRule(WireModel):
    """One RBAC rule, with the same meaning as `rbac.authorization.k8s.io/v1` PolicyRule.

    Empty `resourceNames` means every name, as in Kubernetes RBAC.
    """

    api_groups: tuple[str, ...] = Field(min_length=1, description='API groups; "" is the core group.')
    resources: tuple[str, ...] = Field(min_length=1, description='Resources, e.g. "deployments/scale".')
    verbs: tuple[str, ...] = Field(min_length=1, description='Verbs, e.g. "get", "patch".')
    resource_names: tuple[str, ...] = Field(default=(), description="Object names; empty means every name.")

    def to_k8s(self) -> dict[str, list[str]]:
        """The rule as it is written into a Role."""
        rule = {
            "apiGroups": list(self.api_groups),
            "resources": list(self.resources),
            "verbs": list(self.verbs),
        }
        if self.resource_names:
            rule["resourceNames"] = list(self.resource_names)
        return rule
