"""Where the CLI talks to and as whom, loaded the way kubectl loads it.

- `--kubeconfig PATH`, else every file in `KUBECONFIG` (joined by ':'), merged with the first file
  winning for each name and for `current-context`, else `~/.kube/config`, else the in-cluster
  ServiceAccount.
- `--context` picks a context; `--as`/`--as-group` (or the kubeconfig user's `as`/`as-groups`)
  impersonate, sent as `Impersonate-User`/`Impersonate-Group` headers like kubectl does (one
  Impersonate-Group line per group), on the jitgrant.client Connection every command talks through.
- The namespace: `-n`, else the context's, else (in a pod) `POD_NAMESPACE` or the ServiceAccount
  mount's, else `default`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jitgrant.cli.exitcodes import ExitCode

if TYPE_CHECKING:  # imported where a client is made: `jitgrant --help` must not pay for them
    from jitgrant.client import Connection
    from jitgrant.client.people import PeopleClient

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
PATH_SEPARATOR = os.pathsep


class CliError(Exception):
    """A failure the user can act on: printed as `error: <message>`, exits with `code`."""

    def __init__(self, message: str, code: int = ExitCode.REFUSED) -> None:
        super().__init__(message)
        self.code = int(code)


def add_cluster_flags(parser: argparse.ArgumentParser, *, namespace: bool = True) -> None:
    """The flags every command that talks to the cluster takes, spelled as kubectl spells them."""
    if namespace:
        parser.add_argument(
            "-n",
            "--namespace",
            default=None,
            help="where the AccessRequest is (default: the context's namespace, in a pod its own, else "
            "default)",
        )
    parser.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG (several paths merged)")
    parser.add_argument(
        "--request-timeout",
        default=None,
        metavar="DURATION",
        help="give up on each API call after this long, as kubectl: 30, 30s, 2m (0: no bound); a "
        "watch ends after it",
    )
    parser.add_argument("--context", default=None, help="the kubeconfig context to use")
    parser.add_argument("--as", dest="as_user", default=None, metavar="USER", help="impersonate this user")
    parser.add_argument(
        "--as-group",
        dest="as_groups",
        action="append",
        default=None,
        metavar="GROUP",
        help="impersonate this group (repeatable, needs --as)",
    )


@dataclass(frozen=True)
class Impersonation:
    user: str
    groups: tuple[str, ...] = ()
    uid: str | None = None

    def headers(self) -> list[tuple[str, str]]:
        """kubectl's headers: one Impersonate-Group line per group (the API server reads them so)."""
        pairs = [("Impersonate-User", self.user)]
        pairs.extend(("Impersonate-Group", group) for group in self.groups)
        if self.uid:
            pairs.append(("Impersonate-Uid", self.uid))
        return pairs


@dataclass(frozen=True)
class ClusterConfig:
    """The merged kubeconfig (None: in-cluster) and the context chosen from it."""

    paths: tuple[str, ...]
    merged: Mapping[str, Any] | None
    context_name: str | None

    @property
    def context(self) -> Mapping[str, Any]:
        for entry in (self.merged or {}).get("contexts") or []:
            if entry.get("name") == self.context_name:
                return entry.get("context") or {}
        return {}

    @property
    def user(self) -> Mapping[str, Any]:
        name = self.context.get("user")
        for entry in (self.merged or {}).get("users") or []:
            if entry.get("name") == name:
                return entry.get("user") or {}
        return {}

    @property
    def where(self) -> str:
        return (
            f"kubeconfig {PATH_SEPARATOR.join(self.paths)}" if self.paths else "the in-cluster configuration"
        )


def kubeconfig_paths(explicit: str | None) -> tuple[str, ...]:
    """--kubeconfig, else the existing files among KUBECONFIG's, else ~/.kube/config if it exists."""
    if explicit:
        if not Path(explicit).expanduser().exists():
            raise CliError(f"kubeconfig {explicit} does not exist; pass the path of one", ExitCode.USAGE)
        return (str(Path(explicit).expanduser()),)
    listed = os.environ.get("KUBECONFIG", "")
    candidates = [p for p in listed.split(PATH_SEPARATOR) if p] or [str(Path.home() / ".kube" / "config")]
    return tuple(str(Path(p).expanduser()) for p in candidates if Path(p).expanduser().exists())


def merge_kubeconfigs(paths: Sequence[str]) -> dict[str, Any]:
    """kubectl's merge: the first file to name a cluster, user, context or current-context wins."""
    import yaml  # here: `jitgrant --help` reads no kubeconfig

    merged: dict[str, Any] = {"clusters": [], "users": [], "contexts": [], "current-context": None}
    for path in paths:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CliError(f"cannot read kubeconfig {path}: {exc}", ExitCode.USAGE) from exc
        if not isinstance(loaded, Mapping):
            raise CliError(f"kubeconfig {path} is not a kubeconfig (a YAML mapping)", ExitCode.USAGE)
        for key in ("clusters", "users", "contexts"):
            known = {entry.get("name") for entry in merged[key]}
            merged[key].extend(e for e in loaded.get(key) or [] if e.get("name") not in known)
        if not merged["current-context"] and loaded.get("current-context"):
            merged["current-context"] = loaded["current-context"]
    return merged


def cluster_config(args: argparse.Namespace) -> ClusterConfig:
    paths = kubeconfig_paths(getattr(args, "kubeconfig", None))
    context = getattr(args, "context", None)
    if not paths:
        listed = os.environ.get("KUBECONFIG", "")
        if listed.strip(PATH_SEPARATOR) and not os.environ.get("KUBERNETES_SERVICE_HOST"):
            # kubectl skips missing files in KUBECONFIG; none existing at all is almost always a typo.
            raise CliError(
                f"KUBECONFIG={listed}: no such file; point KUBECONFIG (or --kubeconfig) at an existing "
                "kubeconfig",
                ExitCode.USAGE,
            )
        if not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise CliError(
                "no kubeconfig found and not running in a cluster: pass --kubeconfig PATH or set KUBECONFIG",
                ExitCode.USAGE,
            )
        if context:
            raise CliError(f"--context {context}: there is no kubeconfig to pick it from", ExitCode.USAGE)
        return ClusterConfig(paths=(), merged=None, context_name=None)
    merged = merge_kubeconfigs(paths)
    name = context or merged.get("current-context")
    known = [entry.get("name") for entry in merged["contexts"]]
    where = PATH_SEPARATOR.join(paths)
    if not known:
        raise CliError(
            f"{where} has no contexts: add one (kubectl config set-context NAME --cluster C --user U) "
            "or point --kubeconfig/KUBECONFIG at another kubeconfig",
            ExitCode.USAGE,
        )
    if not name:
        raise CliError(
            f"{where} sets no current-context: pass --context NAME (contexts: {', '.join(map(str, known))}) "
            "or run kubectl config use-context NAME",
            ExitCode.USAGE,
        )
    if name not in known:
        what = f"--context {context}" if context else f"current-context {name!r}"
        raise CliError(
            f"{what} is not in {PATH_SEPARATOR.join(paths)} "
            f"(contexts: {', '.join(map(str, known)) or 'none'})",
            ExitCode.USAGE,
        )
    return ClusterConfig(paths=paths, merged=merged, context_name=name)


def impersonation(args: argparse.Namespace, config: ClusterConfig) -> Impersonation | None:
    """--as/--as-group override the kubeconfig user's as/as-groups, as in kubectl."""
    user = getattr(args, "as_user", None) or config.user.get("as")
    groups = getattr(args, "as_groups", None) or config.user.get("as-groups") or []
    if groups and not user:
        raise CliError("--as-group needs --as USER: Kubernetes impersonates groups of a user", ExitCode.USAGE)
    if not user:
        return None
    return Impersonation(user=str(user), groups=tuple(map(str, groups)), uid=config.user.get("as-uid"))


def connection_from_args(
    args: argparse.Namespace, *, namespace: str = "default", blocking: bool = True
) -> Connection:
    """A connection to the cluster the flags (or kubeconfig, or pod) name, as the identity they name:
    --as/--as-group (or the kubeconfig user's `as`) become Impersonate-* headers, and the API
    server checks the caller's `impersonate` permission on every call. `blocking`: over the standard
    library's HTTP client, which a short command imports in a fraction of aiohttp's time."""
    from jitgrant.client import Connection, JitgrantError

    config = cluster_config(args)
    try:
        if config.merged is None:
            connection = Connection.in_cluster(namespace=namespace)
        else:
            connection = Connection.from_kubeconfig(
                list(config.paths), context=config.context_name, namespace=namespace
            )
    except JitgrantError as exc:
        raise CliError(
            f"cannot use {config.where}: {exc.message}; pass another with --kubeconfig", ExitCode.USAGE
        ) from exc
    connection.blocking = blocking
    who = impersonation(args, config)
    connection.impersonate = tuple(who.headers()) if who is not None else ()
    timeout = getattr(args, "request_timeout", None)
    if timeout:
        connection.request_timeout = request_timeout_seconds(timeout)
    return connection


def request_timeout_seconds(text: str) -> float | None:
    """kubectl's --request-timeout: a bare number is seconds, else a duration (1s, 2m, 3h); 0 means
    no bound. A value kubectl would refuse is a usage error naming it."""
    import re

    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if not match:
        raise CliError(
            f"--request-timeout {text!r}: expected a number of seconds or a duration with a unit "
            "(e.g. 30, 30s, 2m, 1h; 0 for no bound)",
            ExitCode.USAGE,
        )
    value = float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]
    return value or None


def people_from_args(args: argparse.Namespace) -> PeopleClient:
    """The people's client (list/get/approve/...) for the flags' cluster and identity."""
    from jitgrant.client.people import PeopleClient

    return PeopleClient(connection_from_args(args))


def in_cluster_namespace(service_account_dir: Path | None = None) -> str | None:
    """POD_NAMESPACE, else the namespace file of the ServiceAccount mount, as client-go reads it."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        text = ((service_account_dir or SERVICE_ACCOUNT_DIR) / "namespace").read_text().strip()
    except OSError:
        return None
    return text or None


def namespace_from_args(args: argparse.Namespace) -> str:
    """-n, else the chosen context's namespace, else (in a pod) its own, else `default`."""
    if getattr(args, "namespace", None):
        return str(args.namespace)
    config = cluster_config(args)
    if config.merged is not None:
        return str(config.context.get("namespace") or "default")
    return in_cluster_namespace() or "default"
