"""The `jitgrant` command."""
