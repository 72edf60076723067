"""A directory of YAML manifests, sorted by kind: GrantPolicies, ClusterRoles and policy test files.

Every `*.yaml`/`*.yml` below the directory is read (multi-document files too); other kinds
(AccessRequests, PrometheusRules, ...) are ignored. A problem names the file and, where it can, the
document and field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jitgrant.models import PolicyRule
from jitgrant.policy import PolicyCheck, check_policy, rules_of

TEST_KIND = "GrantPolicyTest"


class ManifestError(ValueError):
    """A file that cannot be used; the message names the file (and the case and field if any)."""


@dataclass(frozen=True)
class LoadedPolicy:
    name: str
    path: Path
    check: PolicyCheck


@dataclass
class Manifests:
    policies: dict[str, LoadedPolicy] = field(default_factory=dict)
    cluster_roles: dict[str, tuple[PolicyRule, ...]] = field(default_factory=dict)
    tests: list[tuple[Path, Mapping[str, Any]]] = field(default_factory=list)
    requests: list[Mapping[str, Any]] = field(default_factory=list)  # AccessRequests (with status)
    errors: list[str] = field(default_factory=list)


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ManifestError(f"{root}: no such file or directory (give a directory of YAML manifests)")
    return sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def _name(doc: Mapping[str, Any]) -> str:
    metadata = doc.get("metadata")
    return str(metadata.get("name") or "") if isinstance(metadata, Mapping) else ""


def load(*roots: Path) -> Manifests:
    """Read every manifest below `roots`; unusable documents land in `errors`, not in an exception."""
    found = Manifests()
    for root in roots:
        for path in _files(root):
            try:
                docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                found.errors.append(f"{path}: not valid YAML ({exc})")
                continue
            for index, doc in enumerate(docs):
                if not isinstance(doc, Mapping):
                    continue
                _add(found, path, index, doc)
    return found


def _add(found: Manifests, path: Path, index: int, doc: Mapping[str, Any]) -> None:
    kind = doc.get("kind")
    if kind == "GrantPolicy":
        name = _name(doc)
        if not name:
            found.errors.append(f"{path}: document {index + 1}: GrantPolicy without metadata.name")
        elif name in found.policies:
            found.errors.append(
                f"{path}: GrantPolicy {name!r} is also defined in {found.policies[name].path} "
                "(names are cluster-wide: keep one)"
            )
        else:
            spec = doc.get("spec")
            check = check_policy(spec if isinstance(spec, Mapping) else None)
            found.policies[name] = LoadedPolicy(name=name, path=path, check=check)
    elif kind == "ClusterRole":
        name = _name(doc)
        if name:
            found.cluster_roles[name] = rules_of(doc)
    elif kind == TEST_KIND:
        found.tests.append((path, doc))
    elif kind == "AccessRequest":
        found.requests.append(doc)


def from_objects(objects: Iterable[Mapping[str, Any]], *, source: str) -> Manifests:
    """Manifests from objects read elsewhere (a cluster's lists), each placed at `source/KIND/NAME`."""
    found = Manifests()
    for index, doc in enumerate(objects):
        _add(found, Path(source) / str(doc.get("kind")) / _name(doc), index, doc)
    return found
