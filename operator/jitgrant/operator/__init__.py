"""kopf handlers: parse -> decide (pure) -> act (adapters) -> status. Importing
`jitgrant.operator.registrations` registers them on kopf's default registry."""
