"""The image keeps botocore's models only for jitgrant.extras.AWS_SERVICES (and the credential
providers' services): a client made for any other service would fail in the image alone, at run
time, with UnknownServiceError. This reads the product's source and fails first."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import jitgrant
from jitgrant.extras import AWS_CREDENTIAL_SERVICES, AWS_SERVICES

PRODUCT = Path(jitgrant.__file__).parent


def aws_client_calls(source: str, filename: str = "<source>") -> list[tuple[int, str | None]]:
    """(line, service) for each `<x>.client(...)` / `<x>.resource(...)` / `create_client(...)` in a
    module that imports boto3 or botocore; service is None when it is not a string literal."""
    tree = ast.parse(source, filename)
    imports_aws = any(
        isinstance(node, ast.Import | ast.ImportFrom)
        and any(
            (name or "").split(".")[0] in ("boto3", "botocore")
            for name in (
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module]
            )
        )
        for node in ast.walk(tree)
    )
    if not imports_aws:
        return []
    calls: list[tuple[int, str | None]] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in ("client", "resource", "create_client"):
            continue
        first = (
            node.args[0]
            if node.args
            else next((k.value for k in node.keywords if k.arg == "service_name"), None)
        )
        service = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
        calls.append((node.lineno, service))
    return calls


def test_every_aws_client_the_product_makes_is_for_a_service_the_image_keeps() -> None:
    found: dict[str, list[str]] = {}
    problems = []
    for path in sorted(PRODUCT.rglob("*.py")):
        where = path.relative_to(PRODUCT.parent)
        for line, service in aws_client_calls(path.read_text(), str(path)):
            if service is None:
                problems.append(f"{where}:{line}: service name is not a literal (cannot be checked)")
            elif service not in AWS_SERVICES:
                problems.append(
                    f"{where}:{line}: client for {service!r}, not in jitgrant.extras.AWS_SERVICES"
                )
            else:
                found.setdefault(service, []).append(f"{where}:{line}")
    assert not problems, "\n".join(problems)
    # The list holds nothing stale either: each service is used somewhere.
    assert set(found) == set(AWS_SERVICES), f"unused in AWS_SERVICES: {set(AWS_SERVICES) - set(found)}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import boto3\nboto3.client('ec2')\n", [(2, "ec2")]),
        ("import boto3\nboto3.session.Session().client(\n    'sqs', region_name='x')\n", [(2, "sqs")]),
        ("from botocore.session import get_session\nget_session().create_client(name)\n", [(2, None)]),
        ("import boto3\nboto3.resource(service_name='dynamodb')\n", [(2, "dynamodb")]),
        ("async def f(agents):\n    async with agents.client(ctx) as c:\n        pass\n", []),
    ],
)
def test_the_check_sees_a_client_for_another_service(
    source: str, expected: list[tuple[int, str | None]]
) -> None:
    calls = aws_client_calls(source)
    assert calls == expected
    assert all(service not in AWS_SERVICES for _, service in calls)


def test_the_credential_providers_services_are_kept_too() -> None:
    # botocore makes these itself: web identity (IRSA) and assume-role through STS, SSO profiles.
    assert {"sts", "sso", "sso-oidc"} <= set(AWS_CREDENTIAL_SERVICES)
