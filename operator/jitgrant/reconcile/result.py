"""What a pass answers the scheduler."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PassResult:
    """After controller-runtime's `reconcile.Result`: look again at `requeue_at`; `done`: never again
    until an event says otherwise (a finished request kept forever). Neither: the scheduler retries
    with its backoff, as it does when a pass raises."""

    requeue_at: datetime | None = None
    done: bool = False


RETRY = PassResult()
DONE = PassResult(done=True)
