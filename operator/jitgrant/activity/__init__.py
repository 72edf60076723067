"""What an agent did with its grant, from the API server's own audit log.

`events` parses audit.k8s.io Events, `attribution` ties calls to a grant, `summary` counts them for
the trail: all three pure. `sources` reads the log (`files`: a file; `cloudwatch`: CloudWatch Logs,
behind `base`'s interface); `webhook` receives what the API server's webhook backend posts into a
file the file source reads. `report` is the typed document the client and the MCP server return.
"""
