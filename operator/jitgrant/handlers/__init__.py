"""kopf handlers: parse -> decide (pure) -> act (adapters) -> status. Importing
`jitgrant.handlers.operator` registers them on kopf's default registry."""
