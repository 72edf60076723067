"""Issue 24 §6: the playground's kubeconfigs name each identity's context and user distinctly, so
KUBECONFIG=agent:approver keeps both identities (kubectl's merge keeps the first entry of each name),
and one merged kubeconfig holds all three."""

from __future__ import annotations

import os
import stat

import yaml

from jitgrant.client import Client
from jitgrant_testing.playground import AGENT, AGENT_NAMESPACE, APPROVER, Playground

WHO = {
    "agent@jitgrant": f"system:serviceaccount:{AGENT_NAMESPACE}:{AGENT}",
    "approver@jitgrant": APPROVER,
    "admin@jitgrant": None,  # the embedded cluster's admin, whatever its name
}


def whoami(kubeconfig: str, context: str) -> str:
    with Client.from_kubeconfig(kubeconfig, context=context) as client:
        return client.whoami().username


def test_each_identity_has_its_own_context_and_user(playground: Playground) -> None:
    names = {}
    for who in ("agent", "approver", "admin"):
        config = yaml.safe_load(playground.kubeconfigs[who].read_text())
        names[who] = (config["current-context"], config["users"][0]["name"])
        assert config["current-context"] == f"{who}@jitgrant"
    assert len({context for context, _ in names.values()}) == 3
    assert len({user for _, user in names.values()}) == 3


def test_two_files_in_kubeconfig_keep_both_identities(playground: Playground) -> None:
    both = os.pathsep.join(str(playground.kubeconfigs[who]) for who in ("agent", "approver"))
    assert whoami(both, "agent@jitgrant") == WHO["agent@jitgrant"]
    assert whoami(both, "approver@jitgrant") == APPROVER


def test_the_merged_kubeconfig_holds_all_three(playground: Playground) -> None:
    merged = playground.kubeconfigs["merged"]
    assert stat.S_IMODE(merged.stat().st_mode) == 0o600
    config = yaml.safe_load(merged.read_text())
    assert sorted(c["name"] for c in config["contexts"]) == sorted(WHO)
    assert config["current-context"] == "agent@jitgrant"
    seen = {context: whoami(str(merged), context) for context in WHO}
    assert seen["agent@jitgrant"] == WHO["agent@jitgrant"] and seen["approver@jitgrant"] == APPROVER
    assert len(set(seen.values())) == 3, seen
