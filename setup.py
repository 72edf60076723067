"""Only for the wheel's package data: the demo and the playground apply the repository's examples/ and
the chart's requester/approver ClusterRoles, which live outside the package so that README, chart and
demo share one copy. The build copies them into jitgrant_testing/_data in the wheel (never into the
source tree; an editable install reads the checkout directly). Everything else is in pyproject.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: source in the checkout -> path under jitgrant_testing/_data in the wheel
PACKAGED = {
    "examples": "examples",
    "charts/jitgrant/templates/user-clusterroles.yaml": "user-clusterroles.yaml",
}


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        data = Path(self.build_lib) / "jitgrant_testing" / "_data"
        for source, target in PACKAGED.items():
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(path, data / target, dirs_exist_ok=True)
            else:
                (data / target).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, data / target)


setup(cmdclass={"build_py": BuildPyWithData})
