"""The kubeconfig handed to an agent that has no cluster identity of its own (pure builder).

One cluster, one user, one context whose default namespace is the namespace of the grant, so
`kubectl` without `-n` lands where the grant is and nowhere else. The token inside is the grant's
own short-lived credential; the kubeconfig is as secret as the token and belongs in a Secret only.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

import yaml


def scoped_kubeconfig(
    *, cluster_name: str, server: str, ca_pem: bytes | None, token: str, namespace: str, user: str
) -> dict[str, Any]:
    """A kubeconfig for `user` holding `token`, whose current context defaults to `namespace`.

    `ca_pem` None leaves the server's certificate to the system trust store (or, for a plain http
    dev server, to nothing); TLS verification is never switched off.
    """
    if urlsplit(server).scheme not in ("http", "https"):
        raise ValueError(f"server {server!r} is not an http(s) URL")
    if not token:
        raise ValueError("a scoped kubeconfig needs a token")
    if not namespace:
        raise ValueError("a scoped kubeconfig needs a namespace")
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode("ascii")
    context_name = f"{user}@{cluster_name}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": context_name, "context": {"cluster": cluster_name, "user": user, "namespace": namespace}}
        ],
        "current-context": context_name,
        "preferences": {},
    }


def kubeconfig_yaml(config: dict[str, Any]) -> str:
    """The kubeconfig as the YAML text `kubectl` reads (the value of the Secret's `kubeconfig` key)."""
    text: str = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    return text
