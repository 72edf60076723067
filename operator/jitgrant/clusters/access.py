"""Asking the operator's own API server what someone else may do: a SubjectAccessReview.

The admission webhook uses it to learn whether a caller may `delete` an AccessRequest (who may
revoke, `approvals/revocation.py`). The review runs through `ClusterApi.call`, so its failures leave
as the `clusters.errors` family. The operator needs `create subjectaccessreviews`
(`jitgrant.permissions`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import AuthorizationV1Api

from jitgrant.clusters.own import ClusterApi


@dataclass(frozen=True)
class AccessSubject:
    """Whom a SubjectAccessReview asks about: the identity an admission request's userInfo names."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_userinfo(cls, userinfo: Mapping[str, Any]) -> AccessSubject:
        extra = userinfo.get("extra") or {}
        return cls(
            username=str(userinfo.get("username") or ""),
            uid=str(userinfo.get("uid") or ""),
            groups=tuple(str(group) for group in userinfo.get("groups") or ()),
            extra={str(key): tuple(str(v) for v in values or ()) for key, values in extra.items()},
        )


def own_cluster_api(port: Any) -> ClusterApi | None:
    """The ClusterApi under wrappers that keep it as `.inner` (FencedCluster), or None (a test double).

    A review is a read, so it goes to the client directly: every replica serves the webhooks, and
    fencing guards only the leader's writes.
    """
    seen = 0
    while port is not None and seen < 8:
        if isinstance(port, ClusterApi):
            return port
        port, seen = getattr(port, "inner", None), seen + 1
    return None


async def subject_may(
    api: ClusterApi,
    subject: AccessSubject,
    *,
    verb: str,
    group: str,
    resource: str,
    namespace: str,
    name: str,
) -> bool:
    """Whether the API server's authorizer lets `subject` do `verb` on one object."""
    spec: dict[str, Any] = {
        "user": subject.username,
        "groups": list(subject.groups),
        "resourceAttributes": {
            "verb": verb,
            "group": group,
            "resource": resource,
            "namespace": namespace,
            "name": name,
        },
    }
    if subject.uid:
        spec["uid"] = subject.uid
    if subject.extra:
        spec["extra"] = {key: list(values) for key, values in subject.extra.items()}
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
    result = await api.call(AuthorizationV1Api(api.client).create_subject_access_review, review)
    return bool(result.status.allowed) and not bool(result.status.denied)
