"""Who is asking: the admission stamp, its seal, and OIDC ID-token verification.

Kept empty on purpose: `jitgrant.identity.stamp` and `jitgrant.identity.claims` are pure and must stay
importable without pulling in the network adapter (`jitgrant.identity.jwks`).
"""
