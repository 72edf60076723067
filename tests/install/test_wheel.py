"""Issue 24 §1: the product's own commands from a built wheel, installed outside the checkout.

The wheel is built from a copy of the working tree (nothing written into the checkout) and installed
with `--no-deps` into a fresh venv under a temporary directory; its dependencies come from this test
venv's site-packages through a `.pth` line (no network, and the checkout's editable install is not
on that path: an editable finder is loaded only by its own `.pth`, which a path added so never runs).
So `import jitgrant` in that venv is the wheel's, and a file the wheel lacks is missing for real.
"Without the demo extra" hides the extra's modules with an import hook, as if not installed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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


@pytest.mark.timeout(300)
def test_the_playground_runs_from_the_wheel_and_stops_on_ctrl_c(installed: Installed) -> None:
    process = subprocess.Popen(
        [str(installed.bin / "jitgrant"), "run", "--embedded"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
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
        assert "press Ctrl-C to stop" in banner, banner + (process.stderr.read() if process.stderr else "")
        agent = next(line.split()[1] for line in seen if line.startswith("  agent "))
        assert Path(agent).is_file()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        assert not Path(agent).exists()  # the temporary state directory went with it
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


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
