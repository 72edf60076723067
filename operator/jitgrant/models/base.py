"""Shared pydantic configuration and value types for the wire format of jitgrant resources."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

API_GROUP = "jitgrant.dev"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"


class WireModel(BaseModel):
    """A frozen model whose JSON form uses Kubernetes' camelCase field names.

    `extra="forbid"` makes a typo in a manifest an error instead of a silently ignored field.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
    )


# Go-style durations as Kubernetes users write them ("15m", "1h30m", "90s"). Fractions and units
# below seconds are refused: grants are measured in minutes, so "1.5h" is more likely a mistake.
DURATION_PATTERN = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
_DURATION_RE = re.compile(r"^(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?$")


# No grant, timeout or window is meant to last longer than a year. The bound also keeps every value
# far inside what timedelta, datetime arithmetic and Go's time.Duration (CEL on the API server) hold,
# so a huge number is a validation error naming the field, never an OverflowError somewhere later.
MAX_DURATION = timedelta(days=366)
MAX_DURATION_TEXT = "8784h"
_MAX_DURATION_LENGTH = 32


def parse_duration(text: str) -> timedelta:
    """Parse "1h30m"-style text into a positive timedelta of at most a year, or raise ValueError."""
    if not isinstance(text, str) or len(text) > _MAX_DURATION_LENGTH:
        raise ValueError(f"duration {str(text)[:40]!r} is not of the form 1h30m, 15m or 90s")
    match = _DURATION_RE.fullmatch(text.strip()) if text else None
    if not text or match is None or not any(match.groupdict().values()):
        raise ValueError(f"duration {text!r} is not of the form 1h30m, 15m or 90s")
    parts = {key: int(value or 0) for key, value in match.groupdict().items()}
    # Compared in whole seconds before any timedelta exists: timedelta overflows past ~10^9 days.
    seconds = parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {text!r} is longer than the longest accepted, {MAX_DURATION_TEXT}")
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be longer than zero")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Render a timedelta in the same notation parse_duration reads, e.g. "1h5m"."""
    total = int(value.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n)
    return text or "0s"


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[
    str,
    StringConstraints(pattern=DURATION_PATTERN, min_length=2, max_length=_MAX_DURATION_LENGTH),
    AfterValidator(_check_duration),
    Field(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "duration(self) > duration('0s')", "message": "duration must be longer than zero"}
            ]
        },
    ),
]
