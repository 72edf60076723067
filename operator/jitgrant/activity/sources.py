"""Where the API server's audit Events are read from, behind one small interface.

* `AuditLogFiles`: what kube-apiserver writes with `--audit-log-path` (a self-managed or kind
  cluster, the embedded test server), one Event per line. Rotated files next to it
  (`audit-2025-03-01T12-00-00.000.log`, gzipped with `--audit-log-compress`) are read too.
* `CloudWatchAuditLogs`: EKS, where control-plane audit logging sends the same Events to the log
  group `/aws/eks/<cluster>/cluster`, streams `kube-apiserver-audit-*`.

A source returns every call it holds in the window (with a few seconds of slack); attribution to a
grant is `attribution.activity`'s job, so every source is judged by the same rules.

This module gathers them; each lives in its own (`base`, `files`, `cloudwatch`) so the agent side
(the Python client) imports the file source without reaching boto3 even lazily.
"""

from jitgrant.activity.base import AuditSource, SourceError, Window
from jitgrant.activity.cloudwatch import CloudWatchAuditLogs, eks_log_group
from jitgrant.activity.files import AuditLogFiles

__all__ = ["AuditLogFiles", "AuditSource", "CloudWatchAuditLogs", "SourceError", "Window", "eks_log_group"]
