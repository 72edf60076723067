"""The Dockerfile, checked statically (there is no Docker engine here): pinned bases, a non-root
final user that matches the chart, the entrypoint the chart's args expect, and a build context
that holds what the Dockerfile copies and nothing else."""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from dataclasses import dataclass

import helm_python as helm

from .conftest import ROOT, only, render

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
    assert not pending, "Dockerfile ends inside a continuation line"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def base_images(instructions: list[Instruction]) -> list[str]:
    """FROM images with ARG defaults substituted; earlier stages named by alias are skipped."""
    args = {}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG" and "=" in instruction.arguments:
            name, _, default = instruction.arguments.partition("=")
            args[name] = default
    aliases: set[str] = set()
    images = []
    for instruction in instructions:
        if instruction.keyword != "FROM":
            continue
        words = instruction.arguments.split()
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args[m.group(1)], words[0])
        if image not in aliases:
            images.append(image)
        if len(words) == 3 and words[1].upper() == "AS":
            aliases.add(words[2])
    return images


INSTRUCTIONS = parse(DOCKERFILE.read_text())


def test_base_images_are_pinned_never_latest() -> None:
    images = base_images(INSTRUCTIONS)
    assert images
    for image in images:
        name, _, digest = image.partition("@")
        repository, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "")
        assert tag or digest, f"{image} has neither a tag nor a digest"
        assert tag != "latest", image
        assert re.fullmatch(r"\d+\.\d+\.\d+(-[a-z0-9]+)*", tag) or digest, f"{image}: pin an exact version"
        assert repository


def test_final_stage_runs_as_the_charts_non_root_user(chart: helm.Chart) -> None:
    final = stages(INSTRUCTIONS)[-1]
    users = [i.arguments for i in final if i.keyword == "USER"]
    assert users, "the final stage sets no USER and would run as root"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0, "USER must be a numeric non-root uid (runAsNonRoot checks it)"
    assert group.isdigit() and int(group) != 0
    pod = only(render(chart), "Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"]) == (int(user), int(group))
    # Nothing after USER switches back to root.
    after = final[[i.keyword for i in final].index("USER") :]
    assert all(i.keyword != "USER" or not i.arguments.startswith(("0", "root")) for i in after)


def test_entrypoint_is_the_cli_the_chart_calls(chart: helm.Chart) -> None:
    final = stages(INSTRUCTIONS)[-1]
    entrypoint = [i.arguments for i in final if i.keyword == "ENTRYPOINT"][-1]
    assert entrypoint == '["jitgrant"]', "exec form, so signals reach the operator directly"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "jitgrant" in scripts
    manifests = render(chart)
    assert only(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"][0] == "run"
    assert (
        only(manifests, "Job", "jitgrant-uninstall")["spec"]["template"]["spec"]["containers"][0]["args"][0]
        == "revoke"
    )
    exposed = {int(port) for i in final if i.keyword == "EXPOSE" for port in i.arguments.split()}
    container = only(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert exposed == {port["containerPort"] for port in container["ports"]}


def test_nothing_is_fetched_outside_the_package_manager() -> None:
    for instruction in INSTRUCTIONS:
        assert instruction.keyword != "ADD", "use COPY; ADD fetches URLs and unpacks archives"
        if instruction.keyword == "RUN":
            words = shlex.split(instruction.arguments)
            assert not {"curl", "wget", "sudo"} & set(words), instruction
            if "pip" in " ".join(words) and "install" in words:
                assert "--no-cache-dir" in words, "keep pip's cache out of the image"


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a match on a parent directory counts."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        if any(fnmatch.fnmatch(c, body) or fnmatch.fnmatch(c, body.replace("**/", "")) for c in candidates):
            result = not negate
    return result


def test_build_context_holds_what_the_dockerfile_copies_and_no_more() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = []
    for instruction in INSTRUCTIONS:
        if instruction.keyword == "COPY" and "--from=" not in instruction.arguments:
            *copied, _destination = instruction.arguments.split()
            sources += copied
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source.rstrip("/"), patterns), f"{source} is excluded by .dockerignore"
    assert not ignored("operator/jitgrant/metrics.py", patterns)
    for excluded in (".git", ".venv/bin/python", "tests/chart/test_image.py", "charts/jitgrant/values.yaml"):
        assert ignored(excluded, patterns), f"{excluded} would be sent to the build"
    assert ignored("operator/jitgrant/__pycache__/metrics.cpython-311.pyc", patterns)
