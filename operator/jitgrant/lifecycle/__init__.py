"""The AccessRequest state machine, as pure functions of the request, its policy and the time."""

from jitgrant.lifecycle.transitions import Action, Step, next_step

__all__ = ["Action", "Step", "next_step"]
