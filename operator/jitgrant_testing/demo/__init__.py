"""Scenarios that run the real operator against the embedded cluster (`jitgrant demo`)."""
