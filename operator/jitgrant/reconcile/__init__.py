"""Carrying out the lifecycle's decisions against the cluster, one pass at a time. No kopf."""
