"""An embedded Kubernetes API server for tests and demos: real HTTP, authn, RBAC, admission, watches.

See docs/embedded-cluster.md for what is implemented and where it differs from kube-apiserver.
"""

from .authn import User
from .cluster import EmbeddedCluster

__all__ = ["EmbeddedCluster", "User"]
