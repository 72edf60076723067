"""What an agent did with its grant, from the API server's own audit log.

`events` parses audit.k8s.io Events, `attribution` ties calls to a grant, `summary` counts them for
the trail: all three pure. `sources` reads the log (a file, CloudWatch Logs).
"""
