"""The SBOM lists what the package managers installed; the audit verdict fails only on a fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SBOM = Path(__file__).parent / "sbom.py"

STATUS = """Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u10

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
"""


def test_the_sbom_lists_installed_debian_and_python_packages(tmp_path: Path) -> None:
    dpkg = tmp_path / "rootfs" / "var" / "lib" / "dpkg"
    dpkg.mkdir(parents=True)
    (dpkg / "status").write_text(STATUS)
    site = tmp_path / "site-packages"
    (site / "kopf-1.45.0.dist-info").mkdir(parents=True)
    (site / "kopf-1.45.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: kopf\nVersion: 1.45.0\n"
    )
    done = subprocess.run(
        [sys.executable, str(SBOM), "--rootfs", str(tmp_path / "rootfs"), "--site-packages", str(site)],
        capture_output=True,
        text=True,
        check=True,
    )
    document = json.loads(done.stdout)
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.5"
    assert {c["purl"] for c in document["components"]} == {
        "pkg:deb/debian/libc6@2.36-9+deb12u10?arch=amd64&distro=debian-12",
        "pkg:pypi/kopf@1.45.0",
    }


def verdict(tmp_path: Path, dependencies: list[dict[str, object]]) -> subprocess.CompletedProcess[str]:
    report = tmp_path / "pip-audit.json"
    report.write_text(json.dumps({"dependencies": dependencies}))
    return subprocess.run(
        [sys.executable, str(SBOM), "--check-audit", str(report)], capture_output=True, text=True, check=False
    )


def test_a_vulnerability_with_a_fix_fails_the_build(tmp_path: Path) -> None:
    done = verdict(
        tmp_path,
        [
            {"name": "aiohttp", "version": "3.9.0", "vulns": [{"id": "GHSA-x", "fix_versions": ["3.9.4"]}]},
            {"name": "kopf", "version": "1.45.0", "vulns": []},
        ],
    )
    assert done.returncode == 1
    assert "FAIL: aiohttp 3.9.0: GHSA-x (fixed in 3.9.4)" in done.stderr


def test_a_vulnerability_without_a_fix_is_a_warning(tmp_path: Path) -> None:
    done = verdict(
        tmp_path, [{"name": "pyyaml", "version": "6.0", "vulns": [{"id": "PYSEC-y", "fix_versions": []}]}]
    )
    assert done.returncode == 0
    assert "warning: pyyaml 6.0: PYSEC-y (no fix released)" in done.stderr
