"""Reaching target clusters: the operator's own, or an EKS cluster through an assumed IAM role."""

from jitgrant.clusters.connection import (
    BearerToken,
    ClusterConnection,
    TokenProvider,
    own_cluster_connection,
)
from jitgrant.clusters.eks import EKSAccess, RegionEndpoints
from jitgrant.clusters.errors import ClusterAccessError, backoff_delay
from jitgrant.clusters.registry import TargetClusters

__all__ = [
    "BearerToken",
    "ClusterAccessError",
    "ClusterConnection",
    "EKSAccess",
    "RegionEndpoints",
    "TargetClusters",
    "TokenProvider",
    "backoff_delay",
    "own_cluster_connection",
]
