"""Authentication: static tokens, token files, TokenRequest tokens and expiry, plug-ins, impersonation."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path

import kubernetes
import pytest

from embedkube import EmbeddedCluster, User

from .conftest import Raw

WHOAMI = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
REVIEW = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}


def whoami(raw: Raw, token: str) -> dict[str, object]:
    reply = raw.post(WHOAMI, REVIEW, token=token)
    assert reply.status == 201, reply.body
    info: dict[str, object] = reply.body["status"]["userInfo"]
    return info


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_missing_or_unknown_token_is_401(raw: Raw, token: str | None) -> None:
    reply = raw.get("/api/v1/namespaces", token=token)
    assert reply.status == 401
    assert reply.body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }


def test_discovery_also_needs_a_token(raw: Raw) -> None:
    assert raw.get("/apis", token=None).status == 401
    assert raw.get("/healthz", token=None).status == 200  # health probes stay open


def test_static_user_gets_system_authenticated(cluster: EmbeddedCluster, raw: Raw) -> None:
    token = cluster.add_user(User("alice", "u-1", ("devs",), {"team": ("payments",)}))
    assert whoami(raw, token) == {
        "username": "alice",
        "uid": "u-1",
        "groups": ["devs", "system:authenticated"],
        "extra": {"team": ["payments"]},
    }
    assert cluster.add_user(User("bob"), token="chosen") == "chosen"
    assert whoami(raw, "chosen")["username"] == "bob"


def test_token_auth_file(cluster: EmbeddedCluster, raw: Raw, tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text('t1,carol,uid-c,"ops,admins"\nt2,dave,uid-d\n')
    cluster.load_token_file(path)
    assert whoami(raw, "t1")["groups"] == ["ops", "admins", "system:authenticated"]
    assert whoami(raw, "t2")["uid"] == "uid-d"


def test_extra_authenticator_runs_on_the_server_loop(cluster: EmbeddedCluster, raw: Raw) -> None:
    async def eks(token: str) -> User | None:
        return (
            User("arn:aws:iam::1:role/agent", groups=("agents",)) if token.startswith("k8s-aws-v1.") else None
        )

    cluster.add_authenticator(eks)
    assert whoami(raw, "k8s-aws-v1.abc")["username"] == "arn:aws:iam::1:role/agent"
    assert raw.get("/api", token="k8s-aws-v2.abc").status == 401


def _token_request(
    raw: Raw, seconds: int, namespace: str = "default", name: str = "bot"
) -> dict[str, object]:
    reply = raw.post(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        },
    )
    return {"status": reply.status, "body": reply.body}


def test_token_request_minimum_expiration(raw: Raw) -> None:
    raw.post("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "bot"}})
    short = _token_request(raw, 599)
    assert short["status"] == 422
    assert "may not specify a duration less than 10 minutes" in json.dumps(short["body"])


def test_token_request_missing_service_account_is_404(raw: Raw) -> None:
    assert _token_request(raw, 600, name="ghost")["status"] == 404


def test_token_request_token_authenticates_then_expires(cluster: EmbeddedCluster, raw: Raw) -> None:
    sa = raw.post("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "bot"}}).body
    reply = _token_request(raw, 600)
    assert reply["status"] == 201
    status = reply["body"]["status"]  # type: ignore[index]
    token = status["token"]
    expires = datetime.fromisoformat(status["expirationTimestamp"].replace("Z", "+00:00"))
    assert 590 < (expires - cluster.clock.now()).total_seconds() <= 600
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == "system:serviceaccount:default:bot"
    assert whoami(raw, token) == {
        "username": "system:serviceaccount:default:bot",
        "uid": sa["metadata"]["uid"],
        "groups": ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"],
        "extra": {"authentication.kubernetes.io/credential-id": [f"JTI={claims['jti']}"]},
    }
    cluster.advance_clock(599)
    assert raw.get("/api", token=token).status == 200
    cluster.advance_clock(2)
    assert raw.get("/api", token=token).status == 401


def test_token_stops_working_when_the_service_account_is_deleted(raw: Raw) -> None:
    raw.post("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "bot"}})
    token = _token_request(raw, 3600)["body"]["status"]["token"]  # type: ignore[index]
    assert raw.get("/api", token=token).status == 200
    raw.delete("/api/v1/namespaces/default/serviceaccounts/bot")
    assert raw.get("/api", token=token).status == 401
    raw.post("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "bot"}})
    assert raw.get("/api", token=token).status == 401  # a new ServiceAccount of the same name is another one


def test_token_review(raw: Raw) -> None:
    raw.post("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "bot"}})
    token = _token_request(raw, 3600)["body"]["status"]["token"]  # type: ignore[index]
    review = raw.post(
        "/apis/authentication.k8s.io/v1/tokenreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}},
    )
    assert review.body["status"]["authenticated"] is True
    assert review.body["status"]["user"]["username"] == "system:serviceaccount:default:bot"
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    bad = raw.post(
        "/apis/authentication.k8s.io/v1/tokenreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": forged}},
    )
    assert "authenticated" not in bad.body["status"]  # false is omitted, as upstream's omitempty


def test_official_client_through_kubeconfig(cluster: EmbeddedCluster) -> None:
    token = cluster.add_user(User("erin", groups=("system:masters",)))
    client = kubernetes.config.new_client_from_config_dict(
        cluster.kubeconfig(token=token, namespace="default")
    )
    names = [n.metadata.name for n in kubernetes.client.CoreV1Api(client).list_namespace().items]
    assert "kube-system" in names


def test_impersonation_needs_the_impersonate_verb(cluster: EmbeddedCluster, raw: Raw) -> None:
    token = cluster.add_user(User("frank"))
    as_admin = {"Impersonate-User": "root", "Impersonate-Group": "system:masters"}
    denied = raw.post(WHOAMI, REVIEW, token=token, headers=as_admin)
    assert (denied.status, denied.reason) == (403, "Forbidden")
    assert denied.message == (
        'users "root" is forbidden: User "frank" cannot impersonate resource "users" '
        'in API group "" at the cluster scope'
    )
    reply = raw.post(WHOAMI, REVIEW, headers=as_admin)  # the admin may
    assert reply.body["status"]["userInfo"]["username"] == "root"
    assert reply.body["status"]["userInfo"]["groups"] == ["system:masters", "system:authenticated"]
