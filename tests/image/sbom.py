"""The image's software bill of materials, and the verdict on pip-audit's findings (stdlib only).

`--rootfs R --site-packages S` prints a CycloneDX 1.5 JSON document listing what is installed in
the unpacked image: every Debian package from R/var/lib/dpkg/status and every Python distribution
in S, each with a package URL. It is read from the files the package managers wrote, so it lists
what is there, not what a lock file hoped for.

`--check-audit FILE` reads `pip-audit --format json` output and exits 1 if any vulnerability has a
fixed version to upgrade to (printing each), 0 otherwise: one without a fix is printed as a
warning, since failing on it would block every build with nothing anyone could do. pip-audit asks
PyPI's per-release JSON (/pypi/NAME/VERSION/json); where that is not served (some registry
mirrors only serve /pypi/NAME/json) it skips the package "not found on PyPI". Each skipped package
is then asked at /pypi/NAME/json, whose `vulnerabilities` are those of the latest release: they
count when the installed version is the latest; a package that stays unaudited is named in a
warning, never passed over silently.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from datetime import UTC, datetime
from importlib.metadata import distributions
from pathlib import Path
from typing import Any


def debian_packages(rootfs: Path) -> list[dict[str, Any]]:
    status = rootfs / "var" / "lib" / "dpkg" / "status"
    if not status.is_file():
        return []
    components = []
    for stanza in status.read_text(errors="replace").split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", stanza, flags=re.MULTILINE))
        if "Package" not in fields or "installed" not in fields.get("Status", ""):
            continue
        name, version, arch = fields["Package"], fields.get("Version", ""), fields.get("Architecture", "")
        components.append(
            {
                "type": "library" if name.startswith("lib") else "application",
                "name": name,
                "version": version,
                "purl": f"pkg:deb/debian/{name}@{version}?arch={arch}&distro=debian-12",
                "bom-ref": f"deb:{name}@{version}",
            }
        )
    return components


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def python_packages(site_packages: Path) -> list[dict[str, Any]]:
    components = []
    for dist in distributions(path=[str(site_packages)]):
        name, version = dist.metadata["Name"], dist.version
        component: dict[str, Any] = {
            "type": "library",
            "name": name,
            "version": version,
            "purl": f"pkg:pypi/{normalise(name)}@{version}",
            "bom-ref": f"pypi:{normalise(name)}@{version}",
        }
        licence = dist.metadata.get("License-Expression") or ""
        if licence:
            component["licenses"] = [{"expression": licence}]
        components.append(component)
    return sorted(components, key=lambda c: c["name"].lower())


def sbom(rootfs: Path, site_packages: Path, *, name: str, version: str) -> dict[str, Any]:
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "jitgrant tests/image/sbom.py"}]},
            "component": {"type": "container", "name": name, "version": version},
        },
        "components": debian_packages(rootfs) + python_packages(site_packages),
    }


def fixable(audit: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(vulnerabilities with a fix, without one), one line each."""
    with_fix, without = [], []
    for dependency in audit.get("dependencies", []):
        for vuln in dependency.get("vulns", []):
            line = f"{dependency['name']} {dependency['version']}: {vuln['id']}"
            if vuln.get("fix_versions"):
                with_fix.append(f"{line} (fixed in {', '.join(vuln['fix_versions'])})")
            else:
                without.append(f"{line} (no fix released)")
    return with_fix, without


def latest_release_vulns(name: str, version: str) -> list[dict[str, Any]] | None:
    """PyPI's known vulnerabilities of name==version, if it is the latest release; None: unknown."""
    import urllib.request

    url = f"https://pypi.org/pypi/{normalise(name)}/json"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            project = json.load(response)
    except OSError:
        return None
    if project.get("info", {}).get("version") != version:
        return None
    return [
        {"id": v.get("id", "?"), "fix_versions": v.get("fixed_in") or []}
        for v in project.get("vulnerabilities") or []
    ]


def fill_skipped(audit: dict[str, Any]) -> list[str]:
    """Audit what pip-audit skipped, in place; returns the packages that stay unaudited."""
    unaudited = []
    for dependency in audit.get("dependencies", []):
        reason = dependency.get("skip_reason") or ""
        if "not found on PyPI" not in reason:
            continue
        # "Dependency not found on PyPI and could not be audited: aiohttp (3.14.5)"
        found = re.search(r"\(([^()]+)\)\s*$", reason)
        dependency["version"] = dependency.get("version") or (found.group(1) if found else "")
        vulns = latest_release_vulns(dependency["name"], dependency["version"])
        if vulns is None:
            unaudited.append(f"{dependency['name']} {dependency['version']}")
        else:
            dependency["vulns"] = vulns
            dependency.pop("skip_reason")
    return unaudited


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rootfs", type=Path)
    parser.add_argument("--site-packages", type=Path)
    parser.add_argument("--name", default="jitgrant")
    parser.add_argument("--version", default="0.0.0")
    parser.add_argument("--check-audit", type=Path, metavar="PIP_AUDIT_JSON")
    args = parser.parse_args()
    if args.check_audit:
        audit = json.loads(args.check_audit.read_text())
        unaudited = fill_skipped(audit)
        args.check_audit.write_text(json.dumps(audit, indent=1))
        audited = len(audit.get("dependencies", [])) - len(unaudited)
        print(f"pip-audit: {audited} packages audited against PyPI's vulnerability data", file=sys.stderr)
        if unaudited:
            print(
                f"pip-audit: WARNING: {len(unaudited)} packages could not be audited (not the latest "
                f"release, and PyPI's per-release JSON is not served here): {', '.join(unaudited)}",
                file=sys.stderr,
            )
        with_fix, without = fixable(audit)
        for line in without:
            print(f"pip-audit: warning: {line}", file=sys.stderr)
        for line in with_fix:
            print(f"pip-audit: FAIL: {line}", file=sys.stderr)
        return 1 if with_fix else 0
    if not (args.rootfs and args.site_packages):
        parser.error("--rootfs and --site-packages are needed to write an SBOM")
    document = sbom(args.rootfs, args.site_packages, name=args.name, version=args.version)
    json.dump(document, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
