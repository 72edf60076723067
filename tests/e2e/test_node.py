"""The real node of `make e2e` (jitgrant_testing/node.py): it comes up, runs a pod, and its teardown
leaves nothing on the machine (processes, bridge, iptables chains, cgroups, sysctls, directory).

Opt in with --e2e (make e2e): it needs root, installs Debian packages when missing and builds the
kubelet. Without root or Go it fails with the one line saying what is missing, rather than skip.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from jitgrant_testing.node import PAUSE_IMAGE, SYSCTLS, Node, NodeSettings

pytestmark = pytest.mark.e2e

SETTINGS = NodeSettings(
    node_name="jitgrant-node-test", bridge="jg-test0", pod_subnet="10.244.72.0/24", cni_network="jg-test"
)


def _sysctls() -> dict[str, str]:
    return {
        k: (Path("/proc/sys") / k).read_text().strip() for k in SYSCTLS if (Path("/proc/sys") / k).exists()
    }


def _iptables_kube_chains() -> list[str]:
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return [line for line in saved.splitlines() if line.startswith(":KUBE-") or line.startswith(":CNI-")]


def test_node_runs_a_pod_and_leaves_nothing_behind() -> None:
    before_sysctls = _sysctls()
    before_chains = _iptables_kube_chains()
    node = Node(settings=SETTINGS)
    started = time.monotonic()
    node.start()
    try:
        workdir = node.dir
        assert (Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()) == "1"
        version = node.kubectl(
            "get", "node", SETTINGS.node_name, "-o", "jsonpath={.status.nodeInfo.kubeletVersion}"
        )
        assert version.startswith("v1.") and "v0.0.0" not in version, version
        node.kubectl(
            "run",
            "sleeper",
            f"--image={PAUSE_IMAGE}",
            "--image-pull-policy=Never",
            "--command",
            "--",
            "/pause",
        )
        deadline = time.monotonic() + 60
        phase = ""
        while time.monotonic() < deadline and phase != "Running":
            phase = node.kubectl("get", "pod", "sleeper", "-o", "jsonpath={.status.phase}")
            time.sleep(0.3)
        assert phase == "Running", node.kubectl("describe", "pod", "sleeper")
        ip = node.kubectl("get", "pod", "sleeper", "-o", "jsonpath={.status.podIP}")
        assert ip.startswith("10.244.72."), ip
        print(f"node up and a pod Running in {time.monotonic() - started:.1f}s")
    finally:
        node.stop()
    assert not workdir.exists()
    assert _sysctls() == before_sysctls
    assert _iptables_kube_chains() == before_chains
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert SETTINGS.bridge not in links
    assert not Path("/sys/fs/cgroup/memory", SETTINGS.node_name).exists()
    leftovers = subprocess.run(["pgrep", "-fa", str(workdir)], capture_output=True, text=True).stdout
    assert leftovers == "", leftovers
