"""The kopf edge, the only package that imports kopf: the registrations (importing
`jitgrant.operator.registrations` registers them on kopf's default registry), the admission webhooks,
the GrantPolicy Ready condition, the webhook telemetry and the process runner. Handlers stay thin:
they parse, hand over to the reactor (or a pure decision), and answer."""
