"""The package top is the public surface: the models, run() and the version; nothing else leaks."""

from __future__ import annotations

import json
import subprocess
import sys

import jitgrant

INTENDED = {
    "AccessRequest",
    "AccessRequestSpec",
    "AccessRequestStatus",
    "GrantPolicy",
    "GrantPolicySpec",
    "Phase",
    "__version__",
    "run",
}


def test_the_public_surface_is_the_intended_one() -> None:
    assert set(jitgrant.__all__) == INTENDED
    for name in jitgrant.__all__:
        assert getattr(jitgrant, name) is not None


def test_importing_the_models_pulls_in_no_operator_framework() -> None:
    code = (
        "import json, sys, jitgrant; jitgrant.AccessRequest; "
        "print(json.dumps(sorted(m for m in ('kopf', 'kubernetes', 'boto3', 'embedkube', 'jitgrant_testing') "
        "if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []
