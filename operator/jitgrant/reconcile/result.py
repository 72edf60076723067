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

# The one retry ladder: a pass that answered RETRY (or raised) is tried again after these delays, then
# every last one, until an event says more. The finalizer's retries and kopf's own handler errors
# (operator/registrations.py) follow it too.
RETRY_LADDER: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0)
