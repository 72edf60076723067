"""`jitgrant console`: a web page for approvers that acts only as the person signed in.

Agent-side like the client: it never loads the operator (no kopf, handlers or cluster adapters); it
talks to the API server with the signed-in person's own credentials, so approve, deny and revoke go
through the same RBAC and admission webhooks as `jitgrant approve`.
"""
