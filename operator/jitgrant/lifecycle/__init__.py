"""The AccessRequest state machine, as pure functions of the request, its policy and the time."""

from jitgrant.lifecycle.transitions import (
    CONSEQUENCES,
    GRANTED_CONDITION,
    Action,
    Consequence,
    Step,
    granted_condition,
    next_step,
)

__all__ = [
    "CONSEQUENCES",
    "GRANTED_CONDITION",
    "Action",
    "Consequence",
    "Step",
    "granted_condition",
    "next_step",
]
