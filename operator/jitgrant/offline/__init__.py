"""Policies as code: GrantPolicies read from files and evaluated without a cluster.

`jitgrant policy test`, `policy lint`, `who-can` and `exposure` compute here, from the same pure
functions the webhook and the reconciler run (lifecycle.dry_run, policy.decide, policy.check_policy,
policy.widened_reason), so an offline answer is the operator's answer. No I/O besides reading the
files the caller names (loader.py); no kopf, no Kubernetes client.
"""
