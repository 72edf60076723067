"""Which receivers get which events, as the chart renders it (`--notify-config FILE`, YAML).

The receiver's URL is a credential (a Slack or Teams webhook URL lets anyone post): it is read from a
file (a mounted Secret, `urlFile`), and `url` inline is for tests and local receivers only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from jitgrant.models.vocabulary import NotifyEvent

__all__ = ["DEFAULT_EVENTS", "NotifierConfig", "NotifyConfig", "NotifyEvent"]


DEFAULT_EVENTS = (NotifyEvent.PENDING, NotifyEvent.DECIDED, NotifyEvent.EXPIRED, NotifyEvent.REVOKED)


class NotifierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1, description="Names the notifier in metrics and logs.")
    type: Literal["slack", "teams", "webhook"] = Field(
        description="slack (incoming webhook), teams (incoming webhook) or webhook (generic JSON)."
    )
    url: str | None = Field(default=None, description="The receiver's URL (tests; prefer urlFile).")
    url_file: Path | None = Field(default=None, alias="urlFile", description="A file holding the URL.")
    events: tuple[NotifyEvent, ...] = Field(default=DEFAULT_EVENTS, description="What to notify about.")
    timeout_seconds: float = Field(default=5.0, gt=0, le=60, alias="timeoutSeconds")
    command: str = Field(
        default="jitgrant", description="How approvers call the CLI in the message, e.g. 'kubectl jitgrant'."
    )

    @model_validator(mode="after")
    def _one_url(self) -> NotifierConfig:
        if (self.url is None) == (self.url_file is None):
            raise ValueError(f"notifier {self.name}: set exactly one of url or urlFile")
        return self

    def resolve_url(self) -> str:
        if self.url is not None:
            return self.url
        assert self.url_file is not None
        return self.url_file.read_text().strip()


class NotifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    notifiers: tuple[NotifierConfig, ...] = ()
    queue_size: int = Field(default=1000, ge=1, alias="queueSize")

    @classmethod
    def from_file(cls, path: Path) -> NotifyConfig:
        return cls.model_validate(yaml.safe_load(path.read_text()) or {})
