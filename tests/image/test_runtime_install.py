"""The runtime install without the `aws` extra: boto3 is never loaded by what does not need it, and
what needs it says how to get it. Each case runs in a fresh interpreter where boto3 and botocore
cannot be imported (an import hook refuses them, as if they were not installed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

WITHOUT_AWS = textwrap.dedent(
    """
    import importlib.abc, sys

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("boto3", "botocore"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    # find_spec() answers "not installed" too (jitgrant.extras asks it before importing).
    import importlib.util
    _find_spec = importlib.util.find_spec
    def find_spec(name, *args):
        return None if name.split(".")[0] in ("boto3", "botocore") else _find_spec(name, *args)
    importlib.util.find_spec = find_spec
    """
)


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_AWS + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_help_and_the_operator_modules_load_without_boto3() -> None:
    done = run(
        """
        import contextlib, io
        from jitgrant.cli.main import main
        import jitgrant.clusters, jitgrant.audit.sinks.s3, jitgrant.audit.cli
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                main(["--help"])
        except SystemExit as exit:
            assert exit.code == 0, exit.code
        assert "boto3" not in sys.modules and "botocore" not in sys.modules
        print("ok")
        """
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


@pytest.mark.parametrize(
    ("code", "feature"),
    [
        (
            "from jitgrant.audit.config import S3SinkConfig\n"
            "from jitgrant.audit.sinks.s3 import S3Sink\n"
            "S3Sink(S3SinkConfig(bucket='audit'), name='s3', instance='i')",
            "the S3 audit sink needs boto3",
        ),
        (
            "from jitgrant.audit.config import CloudWatchSinkConfig\n"
            "from jitgrant.audit.sinks.cloudwatch import CloudWatchSink\n"
            "CloudWatchSink(CloudWatchSinkConfig(logGroup='g'), name='cw', instance='i')",
            "the CloudWatch audit sink needs boto3",
        ),
        (
            "from jitgrant.clusters.eks import EKSAccess\nEKSAccess()",
            "EKS targets (jitgrant run --eks) needs boto3",
        ),
    ],
    ids=["s3-sink", "cloudwatch-sink", "eks"],
)
def test_an_aws_feature_without_the_extra_names_what_to_install(code: str, feature: str) -> None:
    done = run(
        f"""
        from jitgrant.extras import MissingExtra
        try:
{textwrap.indent(code, " " * 12)}
        except MissingExtra as missing:
            print(missing)
        """
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        done.stdout.strip()
        == f"{feature}, which is not installed; install it with: pip install 'jitgrant[aws]'"
    )


def test_reading_the_trail_from_s3_without_the_extra_is_a_read_error_with_the_hint() -> None:
    done = run(
        """
        from jitgrant.audit.readers import ReadError, read_s3
        try:
            read_s3("s3://audit/trail/")
        except ReadError as error:
            print(error)
        """
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pip install 'jitgrant[aws]'" in done.stdout
