"""The resource table: built-in types and the custom resources registered by CRDs.

One ``ResourceType`` describes one resource in one served version. Objects are stored per
(group, plural), so all served versions of a CRD share one set of objects (CRD conversion
strategy ``None``: only ``apiVersion`` differs between versions, as in the real server).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

STANDARD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CREATE_ONLY = ("create",)

# Name validation rules of the real types: most names are DNS-1123 subdomains, namespaces are
# labels, RBAC objects are "path segment names" (``system:discovery`` is a valid ClusterRole name).
SUBDOMAIN = "subdomain"
LABEL = "label"
PATH_SEGMENT = "path"


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = STANDARD_VERBS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status", "token", ...
    name_rule: str = SUBDOMAIN
    tracks_generation: bool = False
    custom: bool = False
    schema: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    printer_columns: tuple[Mapping[str, Any], ...] = field(default=(), compare=False, hash=False)
    virtual: bool = False  # create-only review types: nothing is stored

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _b(group: str, version: str, plural: str, kind: str, namespaced: bool, **kw: Any) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        **kw,
    )


RBAC = "rbac.authorization.k8s.io"
ADMISSION = "admissionregistration.k8s.io"
APIEXT = "apiextensions.k8s.io"

BUILTINS: tuple[ResourceType, ...] = (
    _b(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        short_names=("ns",),
        subresources=("status", "finalize"),
        name_rule=LABEL,
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    _b("", "v1", "serviceaccounts", "ServiceAccount", True, short_names=("sa",), subresources=("token",)),
    _b("", "v1", "secrets", "Secret", True),
    _b("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",)),
    _b("", "v1", "events", "Event", True, short_names=("ev",)),
    _b("", "v1", "pods", "Pod", True, short_names=("po",), categories=("all",), subresources=("status",)),
    _b(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        short_names=("deploy",),
        categories=("all",),
        subresources=("status", "scale"),
        tracks_generation=True,
    ),
    _b("events.k8s.io", "v1", "events", "Event", True, short_names=("ev",)),
    _b(RBAC, "v1", "roles", "Role", True, name_rule=PATH_SEGMENT),
    _b(RBAC, "v1", "rolebindings", "RoleBinding", True, name_rule=PATH_SEGMENT),
    _b(RBAC, "v1", "clusterroles", "ClusterRole", False, name_rule=PATH_SEGMENT),
    _b(RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding", False, name_rule=PATH_SEGMENT),
    _b(
        ADMISSION,
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
        tracks_generation=True,
    ),
    _b(
        ADMISSION,
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        False,
        tracks_generation=True,
    ),
    _b(
        APIEXT,
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        short_names=("crd", "crds"),
        subresources=("status",),
        tracks_generation=True,
    ),
    _b("coordination.k8s.io", "v1", "leases", "Lease", True),
    _b(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        verbs=CREATE_ONLY,
        virtual=True,
    ),
    _b(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        False,
        verbs=CREATE_ONLY,
        virtual=True,
    ),
    _b(
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "SubjectAccessReview",
        False,
        verbs=CREATE_ONLY,
        virtual=True,
    ),
    _b(
        "authorization.k8s.io",
        "v1",
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        True,
        verbs=CREATE_ONLY,
        virtual=True,
    ),
    _b(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
        False,
        verbs=CREATE_ONLY,
        virtual=True,
    ),
    _b("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, verbs=CREATE_ONLY, virtual=True),
)

# Verbs of the subresources as discovery lists them.
SUBRESOURCE_VERBS: dict[str, tuple[str, ...]] = {
    "status": ("get", "patch", "update"),
    "scale": ("get", "patch", "update"),
    "token": ("create",),
    "finalize": ("update",),
}
SUBRESOURCE_KIND: dict[tuple[str, str], tuple[str, str, str]] = {
    # (plural, subresource) -> (group, version, kind) of the subresource's own object
    ("serviceaccounts", "token"): ("authentication.k8s.io", "v1", "TokenRequest"),
    ("deployments", "scale"): ("autoscaling", "v1", "Scale"),
}

_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first, others last."""
    m = _VERSION_RE.match(version)
    if not m:
        return (3, 0, 0, version)
    major = int(m.group(1))
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor, "")


class ResourceRegistry:
    """All served resources, indexed for routing and discovery."""

    def __init__(self) -> None:
        self._by_gv: dict[tuple[str, str], dict[str, ResourceType]] = {}
        self._crd_owned: dict[str, list[ResourceType]] = {}
        for rt in BUILTINS:
            self._add(rt)

    def _add(self, rt: ResourceType) -> None:
        self._by_gv.setdefault((rt.group, rt.version), {})[rt.plural] = rt

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_gv.get((group, version), {}).get(plural)

    def has_group_version(self, group: str, version: str) -> bool:
        return (group, version) in self._by_gv

    def resources(self, group: str, version: str) -> list[ResourceType]:
        return sorted(self._by_gv.get((group, version), {}).values(), key=lambda r: r.plural)

    def groups(self) -> dict[str, list[str]]:
        """group -> served versions, preferred version first."""
        out: dict[str, list[str]] = {}
        for group, version in self._by_gv:
            out.setdefault(group, []).append(version)
        return {g: sorted(vs, key=version_priority) for g, vs in sorted(out.items())}

    def preferred(self, group: str, plural: str) -> ResourceType | None:
        for version in self.groups().get(group, []):
            rt = self.get(group, version, plural)
            if rt is not None:
                return rt
        return None

    def all_types(self) -> Iterator[ResourceType]:
        for by_plural in self._by_gv.values():
            yield from by_plural.values()

    def storage_keys(self) -> set[tuple[str, str]]:
        return {rt.key for rt in self.all_types() if not rt.virtual}

    # ---- CRDs -----------------------------------------------------------------------------------

    def register_crd(self, crd: Mapping[str, Any]) -> list[ResourceType]:
        """Serve the CRD's versions; returns the resource types it added."""
        name = crd["metadata"]["name"]
        self.unregister_crd(name)
        spec = crd["spec"]
        names = spec["names"]
        added: list[ResourceType] = []
        for version in spec.get("versions", []):
            if not version.get("served", True):
                continue
            subresources = version.get("subresources") or {}
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            rt = ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=tuple(s for s in ("status", "scale") if s in subresources),
                tracks_generation=True,
                custom=True,
                schema=schema,
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
            )
            self._add(rt)
            added.append(rt)
        self._crd_owned[name] = added
        return added

    def unregister_crd(self, name: str) -> list[ResourceType]:
        removed = self._crd_owned.pop(name, [])
        for rt in removed:
            by_plural = self._by_gv.get((rt.group, rt.version), {})
            by_plural.pop(rt.plural, None)
            if not by_plural:
                self._by_gv.pop((rt.group, rt.version), None)
        return removed

    def crd_types(self, name: str) -> list[ResourceType]:
        return list(self._crd_owned.get(name, []))

    def find_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rt in self._by_gv.get((group, version), {}).values():
            if rt.kind == kind:
                return rt
        return None
