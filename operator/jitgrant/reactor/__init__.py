"""The engine: scheduler, finalizer, sweep, fencing and the runtime they share. No kopf."""
