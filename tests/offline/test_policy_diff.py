"""`jitgrant policy diff OLD NEW`: the routes an edit opens and closes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from jitgrant.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old", tmp_path / "new"
    for root in (old, new):
        shutil.copytree(EXAMPLES / "oncall-restart", root / "oncall-restart")
    return old, new


def diff(capsys: pytest.CaptureFixture[str], old: Path, new: Path) -> dict[str, list[dict[str, object]]]:
    assert main(["policy", "diff", str(old), str(new), "-o", "json"]) == 0
    parsed: dict[str, list[dict[str, object]]] = json.loads(capsys.readouterr().out)
    return parsed


def test_no_change_no_routes(trees: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert diff(capsys, *trees) == {"added": [], "removed": []}


def test_a_new_requester_is_an_added_route(
    trees: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = trees
    policy = new / "oncall-restart" / "policy.yaml"
    policy.write_text(
        policy.read_text().replace(
            "        name: oncall-agent\n", "        name: oncall-agent\n    users: [eve]\n"
        )
    )
    changes = diff(capsys, old, new)
    assert [(r["identity"], r["policy"]) for r in changes["added"]] == [("eve", "oncall-restart")]
    assert changes["removed"] == []


def test_requiring_approval_replaces_the_automatic_route(
    trees: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = trees
    policy = new / "oncall-restart" / "policy.yaml"
    policy.write_text(
        policy.read_text().replace(
            "    required: false", "    required: true\n    approvers: {groups: [sre]}"
        )
    )
    changes = diff(capsys, old, new)
    assert [r["approval"] for r in changes["removed"]] == [{"needed": 0, "from": []}]
    assert [r["approval"] for r in changes["added"]] == [{"needed": 1, "from": ["group sre"]}]


def test_a_widened_clusterrole_changes_the_route(
    trees: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = trees
    role = new / "oncall-restart" / "clusterrole.yaml"
    role.write_text(role.read_text().replace('verbs: ["get", "patch"]', 'verbs: ["get", "patch", "delete"]'))
    changes = diff(capsys, old, new)
    assert len(changes["added"]) == 1 and len(changes["removed"]) == 1
    assert "delete" in changes["added"][0]["rules"][0]["verbs"]  # type: ignore[index]
