"""jitgrant.client's public names are exactly __all__ (httpx's tests/test_exported_members.py is the
model): a name added or dropped without updating __all__ fails here, and every exported name exists."""

from __future__ import annotations

import jitgrant.client
from jitgrant.models.vocabulary import Reason


def test_all_lists_exactly_the_public_names() -> None:
    exported = set(jitgrant.client.__all__)
    public = {
        name
        for name in dir(jitgrant.client)
        if not name.startswith("_")
        # Submodules are reachable as attributes once imported; they are modules, not members.
        and type(getattr(jitgrant.client, name)).__name__ != "module"
    }
    assert public == exported
    assert len(jitgrant.client.__all__) == len(exported), "a name is listed twice"


def test_every_exported_name_resolves_and_reason_is_the_vocabularys() -> None:
    for name in jitgrant.client.__all__:
        assert getattr(jitgrant.client, name) is not None, name
    # One vocabulary: the Reason an agent compares error.reason with is the operator's own enum.
    assert jitgrant.client.Reason is Reason
