"""The AccessRequest state machine, as pure functions of the request, its policy and the time."""

from jitgrant.lifecycle.transitions import GRANTED_CONDITION, Action, Step, granted_condition, next_step

__all__ = ["GRANTED_CONDITION", "Action", "Step", "granted_condition", "next_step"]
