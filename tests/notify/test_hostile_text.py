"""Issue 20 §3: text an agent wrote reaches approvers in Slack, Teams and the JSON webhook as text,
never as a mention, a link, markup, a forged line or a control code, whatever it holds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hostile_text import ACTING, HOSTILE
from jitgrant.models import AccessRequest, Phase
from jitgrant.models.text import json_body
from jitgrant.notify import NotifierConfig, notice_for, render
from jitgrant.notify.messages import Notice

CASES = sorted(HOSTILE)


def notice(text: str) -> Notice:
    """A pending request whose justification, resource name, OIDC subject and status message (a
    release reason, a quoted refusal) all hold the hostile text."""
    request = AccessRequest.model_validate(
        {
            "metadata": {"name": "restart-checkout", "namespace": "agents"},
            "spec": {
                "policy": "prod-restart",
                "namespace": "payments",
                "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"],
                           "resourceNames": [text]}],
                "justification": text,
                "requester": {"username": f"oidc:https://issuer.example#{text}"},
            },
        }
    )  # fmt: skip
    made = notice_for(request, phase=Phase.PENDING, reason="AwaitingApproval", message=f"released: {text}")
    assert made is not None
    return made


def config(kind: str) -> NotifierConfig:
    return NotifierConfig.model_validate({"name": kind, "type": kind, "url": "http://127.0.0.1:1"})


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings(item)]
    return []


def no_acting_characters(texts: list[str]) -> None:
    for text in texts:
        for char in ACTING:
            assert char not in text, (char, text)


@pytest.mark.parametrize("case", CASES)
def test_slack_shows_agent_text_without_mentions_links_markup_or_forged_lines(case: str) -> None:
    body = render(notice(HOSTILE[case]), config("slack"))
    mrkdwn = [body["text"], *(b["text"]["text"] for b in body["blocks"] if b["text"]["type"] == "mrkdwn")]
    for text in mrkdwn:
        # Every '<' Slack would act on (<!channel>, <@U…>, <url|label>) arrives as &lt;.
        assert "<" not in text and ">" not in text, text
        for mention in ("@here", "@channel", "@everyone", "<!"):
            assert mention not in text, text
        assert "https://" not in text, text
        # Slack refuses a section over 3000 characters, which would drop the whole notice.
        assert len(text) <= 3000
    for text in (body["text"], body["blocks"][1]["text"]["text"]):
        # Each fact is one line: the forged "*Requester:*" and "*Scope:*" lines do not exist.
        labels = [line.split(":*")[0] for line in text.split("\n") if line.startswith("*")]
        assert labels == ["*Requester", "*Scope", "*Justification", "*Policy", "*Expires", "*Status"], text
        # Agent text sits in inline code spans: Slack applies no bold, italics or links inside.
        for line in text.split("\n"):
            if line.startswith("*"):
                value = line.split(":* ", 1)[1]
                assert value.startswith("`") and value.endswith("`") and value.count("`") == 2, line
    no_acting_characters(strings(body))
    assert body["unfurl_links"] is False and body["unfurl_media"] is False


@pytest.mark.parametrize("case", CASES)
def test_teams_shows_agent_text_only_in_text_runs_that_render_no_markdown(case: str) -> None:
    body = render(notice(HOSTILE[case]), config("teams"))
    card = body["attachments"][0]["content"]
    assert "msteams" not in card  # no mention entities: an <at> in text is never a mention
    blocks = card["body"]
    facts = [block for block in blocks if block["type"] == "RichTextBlock"]
    assert [fact["inlines"][0]["text"] for fact in facts] == [
        "Requester: ", "Scope: ", "Justification: ", "Policy: ", "Expires: ", "Status: "
    ]  # fmt: skip
    markdown = [block["text"] for block in blocks if block["type"] == "TextBlock"]
    values = [fact["inlines"][1]["text"] for fact in facts]
    assert all(inline["type"] == "TextRun" for fact in facts for inline in fact["inlines"])
    marker = HOSTILE[case][:5]
    assert not any(marker in text for text in markdown if "restart-checkout" not in text)
    for value in values:
        assert "\n" not in value and "https://" not in value, value
        for mention in ("@here", "@channel", "@everyone"):
            assert mention not in value, value
        assert len(value) <= 400
    no_acting_characters(strings(body))


@pytest.mark.parametrize("case", CASES)
def test_the_json_webhook_carries_agent_text_verbatim_json_encoded_as_plain_ascii(case: str) -> None:
    text = HOSTILE[case]
    payload = render(notice(text), config("webhook"))
    body = json_body(payload)
    assert body.isascii() and b"\n" not in body and b"\r" not in body and b"\x1b" not in body
    decoded = json.loads(body)
    assert decoded["justification"] == text  # verbatim: the receiver decides how to show it
    assert decoded["message"] == f"released: {text}"
