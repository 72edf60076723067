"""Builders for the Kubernetes objects that make up a grant (pure: dicts in, dicts out)."""
