"""The fast tier: the client over MockTransport (jitgrant_testing.fakeapi), no API server started.

What these check is the client's reading of the wire: the dry-run answer through the one codec the
webhook writes with, status.approvalsRequired instead of the Pending message, an AlreadyRequested
refusal resolved by spec.requestKey instead of the refusal's text, and kubectl's per-call timeout."""

from __future__ import annotations

import asyncio

import pytest

from jitgrant.client import ApiRefused, ApiUnreachable, AsyncClient, Client, Connection, Progress, Reason
from jitgrant.client.transport import HttpRequest, MockResponse, MockTransport
from jitgrant.lifecycle.dry_run import DryRunAnswer, Outcome
from jitgrant_testing.fakeapi import GROUP, FakeApi, access_request, event, status, warning

ASK = {
    "policy": "prod-restart",
    "namespace": "payments",
    "cluster_role": "jit-restart-checkout",
    "justification": "INC-1 checkout stuck",
}
CREATE = f"POST {GROUP}/namespaces/agents/accessrequests"
WEBHOOK = 'admission webhook "accessrequests.jitgrant.dev" denied the request: '


def client_for(api: FakeApi) -> Client:
    return Client(AsyncClient(Connection.for_transport(api.transport, namespace="agents")))


def test_check_reads_the_answer_the_webhook_wrote_through_the_one_codec() -> None:
    # The webhook's own writer (lifecycle/dry_run.py), with a message holding the separators a
    # prose parser would split on.
    answer = DryRunAnswer(
        Outcome.PENDING_APPROVAL,
        Reason.AWAITING_APPROVAL,
        "needs 2 approval(s): from groups sre; or users bob=1",
        approvals=2,
        approver_groups=("sre",),
    )
    api = FakeApi()
    api.answers[CREATE] = MockResponse(201, json={}, headers=[warning(w) for w in answer.warnings()])
    with client_for(api) as client:
        found = client.check(**ASK)
    assert found.outcome == "pending-approval"
    assert found.reason == "AwaitingApproval"
    assert found.message.startswith("needs 2 approval(s): from groups sre; or users bob=1")
    assert found.approvals_needed == 2 and found.approvers == "groups sre (never the requester)"
    [create] = [r for r in api.transport.requests if r.method == "POST"]
    assert create.query == {"dryRun": "All"}


def test_check_reads_a_denial_from_the_refusal() -> None:
    refused = DryRunAnswer(Outcome.DENIED, Reason.POLICY_REFUSED, "duration 2h: over maxDuration 15m")
    api = FakeApi()
    api.answers[CREATE] = status(403, WEBHOOK + refused.refusal)
    with client_for(api) as client:
        found = client.check(**ASK)
    assert (found.outcome, found.reason, found.message) == (
        "denied",
        "PolicyRefused",
        "duration 2h: over maxDuration 15m",
    )


def test_wait_takes_the_approvals_needed_from_status_not_from_the_message() -> None:
    """The caller may not read the policy (403) and the message names no number: the count comes
    from status.approvalsRequired."""
    api = FakeApi()
    pending = access_request(
        "r1", phase="Pending", reason="AwaitingApproval", message="waiting", approvalsRequired=3
    )
    api.requests["r1"] = pending
    active = access_request("r1", phase="Active", reason="Approved", message="active")
    active["metadata"]["resourceVersion"] = "12"
    api.watch_events = [event("MODIFIED", active)]
    seen: list[Progress] = []
    with client_for(api) as client:
        grant = client.wait("r1", timeout="10s", on_progress=seen.append, deliver=False)
    assert grant.request.status.phase is not None and grant.request.status.phase.value == "Active"
    assert seen[0].phase == "Pending" and seen[0].approvals_needed == 3, seen
    assert f"GET {GROUP}/grantpolicies/prod-restart" not in api.seen(), "read the policy it did not need"


def test_a_retried_request_gets_the_open_one_with_its_request_key_back() -> None:
    """The webhook's 409 says AlreadyRequested in prose; the client finds the open request by its
    spec.requestKey (structured), whatever the prose says."""
    api = FakeApi()
    with client_for(api) as client:
        key = client.aio.manifest(**ASK)["spec"]["requestKey"]
        open_one = access_request("restart-1", phase="Pending")
        open_one["spec"]["requestKey"] = key
        api.requests["restart-1"] = open_one
        api.answers[CREATE] = status(409, WEBHOOK + "you already asked (wording may change)")
        got = client.request(**ASK)
    assert got.metadata.name == "restart-1"


def test_a_name_conflict_is_not_taken_for_an_open_request() -> None:
    api = FakeApi()
    api.answers[CREATE] = status(409, 'accessrequests.jitgrant.dev "x" already exists', "AlreadyExists")
    with client_for(api) as client, pytest.raises(ApiRefused) as refused:
        client.request(name="x", **ASK)
    assert refused.value.status == 409 and refused.value.reason != Reason.ALREADY_REQUESTED


def test_another_requesters_open_request_is_refused_with_already_requested() -> None:
    api = FakeApi()
    with client_for(api) as client:
        theirs = access_request("theirs", phase="Pending")
        theirs["spec"]["requestKey"] = client.aio.manifest(**ASK)["spec"]["requestKey"]
        theirs["spec"]["requester"] = {"username": "someone-else"}
        api.requests["theirs"] = theirs
        api.answers[CREATE] = status(409, WEBHOOK + "an open request covers this scope")
        with pytest.raises(ApiRefused) as refused:
            client.request(**ASK)
    assert refused.value.reason == Reason.ALREADY_REQUESTED


def test_request_timeout_bounds_each_call() -> None:
    async def slow(request: HttpRequest) -> MockResponse:
        await asyncio.sleep(30)
        return MockResponse(200, json={})

    connection = Connection.for_transport(MockTransport(slow), namespace="agents")
    connection.request_timeout = 0.2
    with Client(AsyncClient(connection)) as client, pytest.raises(ApiUnreachable) as unreachable:
        client.whoami()
    assert "within the request timeout of 0.2s" in unreachable.value.message
