"""Issue 24 §1: the product's own commands from a built wheel, installed outside the checkout.

The wheel is built from a copy of the working tree (nothing written into the checkout) and installed
with `--no-deps` into a fresh venv under a temporary directory; its dependencies come from this test
venv's site-packages through a `.pth` line (no network, and the checkout's editable install is not
on that path: an editable finder is loaded only by its own `.pth`, which a path added so never runs).
So `import jitgrant` in that venv is the wheel's, and a file the wheel lacks is missing for real.
"Without the demo extra" hides the extra's modules with an import hook, as if not installed.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

ROOT = Path(__file__).resolve().parents[2]
HIDE_ENV = "JITGRANT_TEST_HIDE_MODULES"
HIDER = f"""\
import importlib.abc, importlib.util, os, sys
_hidden = tuple(m for m in os.environ.get({HIDE_ENV!r}, "").split(",") if m)
if _hidden:
    class _NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in _hidden:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None
    sys.meta_path.insert(0, _NotInstalled())
    _find_spec = importlib.util.find_spec
    def _find(name, *args):
        return None if name.split(".")[0] in _hidden else _find_spec(name, *args)
    importlib.util.find_spec = _find
"""


@dataclass
class Installed:
    wheel: Path
    bin: Path
    home: Path  # a directory outside the checkout, the commands' working directory

    def run(self, *args: str, hide: str = "", timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "jitgrant"), *args],
            capture_output=True,
            text=True,
            cwd=self.home,
            env=self.env(hide),
            timeout=timeout,
            check=False,
        )

    def env(self, hide: str = "") -> dict[str, str]:
        dropped = ("PYTHONPATH", "JITGRANT_EXAMPLES", "VIRTUAL_ENV")
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        return {**env, HIDE_ENV: hide, "PATH": f"{self.bin}{os.pathsep}{env.get('PATH', '')}"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        path = ROOT / os.fsdecode(name)
        if path.is_file():
            target = source / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    dist = base / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("jitgrant-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    subprocess.run(
        [*pip, "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "_jitgrant_test_hide.py").write_text(HIDER)
    (site / "_jitgrant_test_hide.pth").write_text("import _jitgrant_test_hide\n")
    (site / "zz_jitgrant_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    home = base / "home"
    home.mkdir()
    yield Installed(wheel=wheel, bin=venv / "bin", home=home)


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Installed) -> None:
    done = subprocess.run(
        [str(installed.bin / "python"), "-c", "import jitgrant, jitgrant_testing; print(jitgrant.__file__)"],
        capture_output=True,
        text=True,
        cwd=installed.home,
        env=installed.env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert str(ROOT) not in done.stdout and str(installed.bin.parent) in done.stdout


def test_the_wheel_carries_what_the_demo_and_the_playground_apply(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for needed in (
        "jitgrant_testing/_data/examples/oncall-restart/policy.yaml",
        "jitgrant_testing/_data/examples/oncall-restart/clusterrole.yaml",
        "jitgrant_testing/_data/examples/prod-approval/policy.yaml",
        "jitgrant_testing/_data/examples/requests/restart-checkout.yaml",
        "jitgrant_testing/_data/user-clusterroles.yaml",
    ):
        assert needed in names, needed


@pytest.mark.timeout(300)
def test_demo_list_and_one_scenario_run_from_the_wheel(installed: Installed) -> None:
    listed = installed.run("demo", "--list")
    assert listed.returncode == 0, listed.stderr
    assert "oncall-restart" in listed.stdout and "mcp-agent" in listed.stdout
    scenario = installed.run("demo", "--scenario", "oncall-restart")
    assert scenario.returncode == 0, scenario.stdout[-3000:] + scenario.stderr[-3000:]
    assert "every step checked against the cluster" in scenario.stdout


@contextmanager
def playground(installed: Installed) -> Iterator[tuple[subprocess.Popen[str], dict[str, Path]]]:
    """`jitgrant run --embedded` from the wheel, until its banner; the kubeconfigs it printed."""
    process = subprocess.Popen(
        [str(installed.bin / "jitgrant"), "run", "--embedded"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=installed.home,
        env=installed.env(),
    )
    try:
        assert process.stdout is not None
        seen: list[str] = []
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "press Ctrl-C to stop" in line:
                break
        banner = "".join(seen)
        assert "press Ctrl-C to stop" in banner, banner
        paths = {
            who: Path(path)
            for who, path in re.findall(r"^  (agent|approver|admin|all three)\s+(\S+)", banner, re.M)
        }
        yield process, paths
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_the_playground_runs_from_the_wheel_and_cleans_up_on_ctrl_c_or_sigterm(
    installed: Installed, stop: signal.Signals
) -> None:
    with playground(installed) as (process, paths):
        assert paths["agent"].is_file() and paths["all three"].is_file()
        process.send_signal(stop)
        assert process.wait(timeout=60) == 0
        assert not paths["agent"].parent.exists()  # the temporary state directory with its tokens


async def _mcp_agent(installed: Installed, kubeconfig: Path) -> tuple[dict[str, Any], str, dict[str, Any]]:
    params = StdioServerParameters(
        command=str(installed.bin / "jitgrant"),
        args=["mcp", "--kubeconfig", str(kubeconfig), "--context", "agent@jitgrant"],
        env=installed.env(),
        cwd=str(installed.home),
    )
    async with Client(params, cache=None) as client:
        grantable = await client.call_tool("list_grantable", {})
        ask = {
            "policy": "prod-restart",
            "namespace": "payments",
            "cluster_role": "jit-restart-checkout",
            "justification": "INC-2 checkout stuck",
        }
        bad = await client.call_tool("request_access", {**ask, "duration": "10 minutes"})
        assert bad.is_error
        check = await client.call_tool("check_access", {**ask, "duration": "10m"})
    assert grantable.structured_content is not None and check.structured_content is not None
    text = " ".join(getattr(block, "text", "") for block in bad.content)
    return grantable.structured_content, text, check.structured_content


@pytest.mark.timeout(300)
def test_the_newcomer_path_from_the_wheel(installed: Installed) -> None:
    """The playground, then request / approve / release as three identities through its one merged
    kubeconfig, then MCP over stdio with the SDK's client (a bad argument included)."""
    with playground(installed) as (process, paths):
        merged = str(paths["all three"])

        def jitgrant(who: str, *args: str) -> subprocess.CompletedProcess[str]:
            return installed.run(*args, "--kubeconfig", merged, "--context", f"{who}@jitgrant", timeout=60)

        ask = ["--policy", "prod-restart", "--target-namespace", "payments"]
        ask += ["--cluster-role", "jit-restart-checkout", "--for", "10m", "--justification", "INC-1 stuck"]
        as_agent = ["--kubeconfig", merged, "--context", "agent@jitgrant"]
        agent = subprocess.Popen(
            [str(installed.bin / "jitgrant"), "request", *ask, "--wait", "--wait-timeout", "90s", *as_agent],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=installed.home,
            env=installed.env(),
        )
        try:
            assert agent.stdout is not None
            name = agent.stdout.readline().strip()
            assert name.startswith("prod-restart-"), name
            deadline = time.monotonic() + 30
            approve = ("approve", name, "-n", "agents", "--reason", "ok")
            while (approved := jitgrant("approver", *approve)).returncode:
                assert time.monotonic() < deadline, approved.stderr
                time.sleep(0.5)
            _, err = agent.communicate(timeout=90)
            assert agent.returncode == 0, err
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.communicate()
        released = jitgrant("agent", "release", name, "-n", "agents")
        assert released.returncode == 0 and "Released" in released.stdout, released.stderr
        listed = jitgrant("admin", "list", "-n", "agents")
        assert listed.returncode == 0 and "Revoked" in listed.stdout and "ended:" in listed.stdout

        grantable, bad, check = asyncio.run(_mcp_agent(installed, Path(merged)))
        assert {p["policy"] for p in grantable["policies"]} >= {"oncall-restart", "prod-restart"}
        assert "InvalidRequest: duration: got '10 minutes'" in bad and "Next:" in bad, bad
        assert check["outcome"] == "pending-approval", check

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0


@pytest.mark.parametrize("command", [("demo", "--list"), ("demo",), ("run", "--embedded")])
def test_without_the_demo_extra_a_one_line_hint_and_exit_2(
    installed: Installed, command: tuple[str, ...]
) -> None:
    done = installed.run(*command, hide="jsonschema,celpy,moto", timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'jitgrant[demo]'" in lines[0], done.stderr
    assert "jsonschema" in lines[0]


def test_jitgrant_console_serves_its_page_assets_from_the_wheel(installed: Installed, tmp_path: Path) -> None:
    """`jitgrant console` from the wheel (issue 27): it starts with a kubeconfig and serves the script
    and stylesheet its pages load, as packaged (no API call is made before someone signs in)."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    process = subprocess.Popen(
        [str(installed.bin / "jitgrant"), "console", "--no-browser", "--kubeconfig", str(kubeconfig)],
        cwd=installed.home,
        env=installed.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "jitgrant console: sign in at http://127.0.0.1:" in line, line
        base = line.split(" at ")[1].split("/login")[0]
        import urllib.request

        for name in ("console.js", "console.css"):
            with urllib.request.urlopen(f"{base}/static/{name}", timeout=30) as answer:
                served = answer.read()
            assert served == (ROOT / "operator" / "jitgrant" / "console" / "static" / name).read_bytes(), name
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
