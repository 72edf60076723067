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


class DenyRule(WireModel):
    """A permission no grant may carry (issue 31 §5), whatever the ClusterRole or inline rules say:
    RBAC's rule shape, plus the namespaces it applies in.

    It matches a granted permission that overlaps it at every position: "*" on either side matches
    anything there, empty `resourceNames` every name, empty `namespaces` every namespace.
    """

    api_groups: tuple[str, ...] = Field(
        min_length=1, description='API groups; "" is the core group, "*" any.'
    )
    resources: tuple[str, ...] = Field(
        min_length=1, description='Resources, e.g. "pods", "pods/exec", "*/scale", "*".'
    )
    verbs: tuple[str, ...] = Field(min_length=1, description='Verbs, e.g. "delete", "*".')
    resource_names: tuple[str, ...] = Field(default=(), description="Object names; empty means every name.")
    namespaces: tuple[str, ...] = Field(
        default=(), description="Namespaces the rule applies in; empty means every namespace."
    )

    def describe(self) -> str:
        """The rule in one line, as error messages name it."""
        groups = ", ".join(repr(group) if group == "" else group for group in self.api_groups)
        parts = [
            f"verbs {', '.join(self.verbs)}",
            f"resources {', '.join(self.resources)}",
            f"apiGroups {groups}",
        ]
        if self.resource_names:
            parts.append(f"resourceNames {', '.join(self.resource_names)}")
        if self.namespaces:
            parts.append(f"namespaces {', '.join(self.namespaces)}")
        return "; ".join(parts)
