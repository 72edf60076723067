"""Issue 24 §3/§4: the Python client refuses bad arguments with InvalidRequest (a JitgrantError naming
the field, what was given, what is accepted and an example) before anything is sent; `justification`
is the argument's name as in the CRD, `reason=` its deprecated spelling; grant()'s own timeout says
what happened to the request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jitgrant.client import AccessTimedOut, Client, InvalidRequest, JitgrantError
from jitgrant.models.vocabulary import Reason
from jitgrant_testing.agents import NS, REASON, Agents

PROD: dict[str, Any] = {
    "policy": "prod-restart",
    "namespace": "payments",
    "cluster_role": "jit-restart-checkout",
    "justification": REASON,
}


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[Client]:
    """A client whose API server does not exist: an argument error must be raised before any call."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u, namespace: agents}}]\n"
    )
    with Client.from_kubeconfig(kubeconfig) as client:
        yield client


@pytest.mark.parametrize(
    ("changes", "field", "example"),
    [
        ({"duration": "10 minutes"}, "duration", "'10m'"),
        ({"duration": 600}, "duration", "'10m'"),
        ({"justification": ""}, "justification", "INC-4711"),
        ({"justification": None}, "justification", "INC-4711"),
        ({"policy": 7}, "policy", "oncall-restart"),
        ({"rules": [{"verbs": ["get"]}]}, "rules", "apiGroups"),
    ],
)
@pytest.mark.parametrize("method", ["request", "check", "manifest"])
def test_a_bad_argument_raises_invalid_request_naming_it(
    offline: Client, method: str, changes: dict[str, Any], field: str, example: str
) -> None:
    arguments = {**PROD, **changes}
    if "rules" in changes:
        arguments.pop("cluster_role")
    call = getattr(offline.aio if method == "manifest" else offline, method)
    with pytest.raises(InvalidRequest) as raised:
        call(**arguments)
    error = raised.value
    assert isinstance(error, JitgrantError) and error.reason == Reason.INVALID_REQUEST
    assert error.field.startswith(field) and example in str(error), str(error)
    if field != "rules":
        assert f"got {changes[field]!r}" in str(error), str(error)


@pytest.mark.parametrize("method", ["request", "check"])
def test_an_unknown_argument_raises_invalid_request_listing_the_known_ones(
    offline: Client, method: str
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        getattr(offline, method)(**PROD, durtion="10m")
    assert raised.value.field == "durtion" and "duration" in raised.value.accepted


def test_grant_refuses_a_bad_timeout_before_filing_anything(offline: Client) -> None:
    with pytest.raises(InvalidRequest) as raised, offline.grant(**PROD, timeout="ten minutes"):
        pass
    assert raised.value.field == "timeout" and "'5m'" in str(raised.value)


def test_reason_is_the_deprecated_spelling_of_justification(offline: Client) -> None:
    with pytest.warns(DeprecationWarning, match="justification="):
        manifest = offline.aio.manifest(**{**PROD, "justification": None}, reason="INC-9")
    assert manifest["spec"]["justification"] == "INC-9"
    assert offline.aio.manifest(**PROD)["spec"]["justification"] == REASON


def test_grant_timing_out_says_the_request_was_withdrawn(agents: Agents) -> None:
    with Client.from_kubeconfig(agents.kubeconfig()) as client:
        with pytest.raises(AccessTimedOut) as raised, client.grant(**PROD, timeout=1):
            pytest.fail("prod-restart needs an approver: the block must not run")
        error = raised.value
        assert error.reason == Reason.WAIT_TIMEOUT
        assert "stays filed" not in error.message and "withdrew it" in error.message, error.message
        assert error.request is not None
        ended = agents.env.get_request(NS, error.request.metadata.name)
        assert ended["status"]["reason"] == "Released", ended["status"]
