"""The audit trail: records, hash chain, sinks, spool, verify and query.

The operator's handlers need only what is exported here.
"""

from jitgrant.audit.config import AuditConfig
from jitgrant.audit.records import (
    SCHEMA_VERSION,
    ApproverRecord,
    AuditEvent,
    AuditRecord,
    Checkpoint,
    EventType,
    RequesterRecord,
    ScopeRecord,
    WindowRecord,
)
from jitgrant.audit.trail import AuditTrail, AuditUnavailable

__all__ = [
    "SCHEMA_VERSION",
    "ApproverRecord",
    "AuditConfig",
    "AuditEvent",
    "AuditRecord",
    "AuditTrail",
    "AuditUnavailable",
    "Checkpoint",
    "EventType",
    "RequesterRecord",
    "ScopeRecord",
    "WindowRecord",
]
