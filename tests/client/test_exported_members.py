"""jitgrant.client's public names are exactly __all__ (httpx's tests/test_exported_members.py is the
model), and an agent's code written against them keeps working: a name added or dropped without
updating __all__ and this list fails here."""

from __future__ import annotations

import importlib
import subprocess
import sys

import jitgrant.client
from jitgrant.models.vocabulary import Reason

PUBLIC = [
    "AccessDenied",
    "AccessEnded",
    "AccessFailed",
    "AccessTimedOut",
    "Activity",
    "ActivityCall",
    "ActivityUnavailable",
    "ApiRefused",
    "ApiUnreachable",
    "AsyncClient",
    "AuditLogFiles",
    "AuditSource",
    "CheckResult",
    "Client",
    "Connection",
    "Grant",
    "Grantable",
    "Identity",
    "InvalidRequest",
    "JitgrantError",
    "NotYourRequest",
    "Progress",
    "Reason",
    "RequestNotFound",
    "ending_words",
]


def test_all_is_the_public_api() -> None:
    assert jitgrant.client.__all__ == PUBLIC


def test_every_public_name_resolves_and_nothing_else_is_public() -> None:
    module = importlib.reload(jitgrant.client)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    public = {
        name
        for name, value in vars(module).items()
        # Submodules become attributes once imported; they are modules, not members.
        if not name.startswith("_") and type(value).__name__ != "module" and name not in ("annotations",)
    }
    assert public - {"TYPE_CHECKING", "Any", "importlib"} == set(module.__all__)
    # One vocabulary: the Reason an agent compares error.reason with is the operator's own enum.
    assert module.Reason is Reason


def test_importing_an_error_class_loads_no_http_client() -> None:
    probe = "import sys; from jitgrant.client import ApiRefused; print('aiohttp' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"
