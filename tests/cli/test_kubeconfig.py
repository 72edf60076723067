"""Loading the cluster and the identity as kubectl does, without a cluster: which file, which
context, which namespace, and who we impersonate."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import yaml

from jitgrant.cli import kubeconfig
from jitgrant.cli.kubeconfig import CliError, cluster_config, impersonation, namespace_from_args


def args(**flags: object) -> argparse.Namespace:
    defaults = {"kubeconfig": None, "context": None, "namespace": None, "as_user": None, "as_groups": None}
    return argparse.Namespace(**{**defaults, **flags})


def write(
    path: Path, *, contexts: dict[str, str], current: str | None, users: dict[str, dict[str, object]]
) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": name, "user": {"token": "t", **user}} for name, user in users.items()],
                "contexts": [
                    {"name": name, "context": {"cluster": "c", "user": name, "namespace": namespace}}
                    for name, namespace in contexts.items()
                ],
                **({"current-context": current} if current else {}),
            }
        )
    )
    return path


def test_several_kubeconfig_paths_merge_and_the_first_current_context_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write(tmp_path / "a", contexts={"dev": "agents"}, current="dev", users={"dev": {}})
    second = write(tmp_path / "b", contexts={"prod": "payments"}, current="prod", users={"prod": {}})
    monkeypatch.setenv("KUBECONFIG", f"{first}{os.pathsep}{tmp_path / 'missing'}{os.pathsep}{second}")

    config = cluster_config(args())
    assert config.paths == (str(first), str(second))
    assert config.context_name == "dev"
    assert namespace_from_args(args()) == "agents"
    # A context from the second file, picked with --context.
    assert namespace_from_args(args(context="prod")) == "payments"
    # -n wins over every default.
    assert namespace_from_args(args(context="prod", namespace="orders")) == "orders"


def test_an_unknown_context_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "a", contexts={"dev": "agents"}, current="dev", users={"dev": {}})
    with pytest.raises(CliError) as refused:
        cluster_config(args(kubeconfig=str(path), context="staging"))
    assert refused.value.code == 2
    assert "--context staging is not in" in str(refused.value) and "(contexts: dev)" in str(refused.value)


def test_a_missing_kubeconfig_is_named(tmp_path: Path) -> None:
    with pytest.raises(CliError, match=r"kubeconfig .*absent does not exist"):
        cluster_config(args(kubeconfig=str(tmp_path / "absent")))


def test_in_a_pod_the_namespace_is_the_service_account_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    mount = tmp_path / "serviceaccount"
    mount.mkdir()
    (mount / "namespace").write_text("agents\n")
    monkeypatch.setattr(kubeconfig, "SERVICE_ACCOUNT_DIR", mount)

    assert cluster_config(args()).merged is None
    assert namespace_from_args(args()) == "agents"
    monkeypatch.setenv("POD_NAMESPACE", "ops")
    assert namespace_from_args(args()) == "ops"
    monkeypatch.delenv("POD_NAMESPACE")
    (mount / "namespace").unlink()
    assert namespace_from_args(args()) == "default"
    with pytest.raises(CliError, match="--context dev: there is no kubeconfig"):
        cluster_config(args(context="dev"))


def test_impersonation_comes_from_the_flags_or_the_kubeconfig_user(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a",
        contexts={"plain": "agents", "as-bob": "agents"},
        current="plain",
        users={"plain": {}, "as-bob": {"as": "bob", "as-groups": ["sre-oncall"]}},
    )
    assert impersonation(args(), cluster_config(args(kubeconfig=str(path)))) is None
    from_file = impersonation(args(), cluster_config(args(kubeconfig=str(path), context="as-bob")))
    assert from_file is not None and (from_file.user, from_file.groups) == ("bob", ("sre-oncall",))
    flags = args(kubeconfig=str(path), context="as-bob", as_user="alice", as_groups=["a", "b"])
    overridden = impersonation(flags, cluster_config(flags))
    assert overridden is not None and (overridden.user, overridden.groups) == ("alice", ("a", "b"))
    with pytest.raises(CliError, match="--as-group needs --as USER"):
        flags = args(kubeconfig=str(path), as_groups=["a"])
        impersonation(flags, cluster_config(flags))
