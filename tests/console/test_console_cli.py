"""`jitgrant console` as a person starts it: a process that prints its one-time sign-in link."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from jitgrant.cli.main import main

from .conftest import People


def test_jitgrant_console_prints_a_one_time_link_that_signs_in_as_the_kubeconfig(people: People) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "jitgrant.cli.main", "console", "--no-browser"],
        env={**os.environ, "KUBECONFIG": str(people.kubeconfigs["alice"])},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("jitgrant console: sign in at http://127.0.0.1:"), line
        link = urlsplit(line.split(" at ")[1].split()[0])
        connection = http.client.HTTPConnection(link.hostname or "", link.port, timeout=30)
        connection.request("GET", f"{link.path}?{link.query}")
        signed_in = connection.getresponse()
        signed_in.read()
        assert signed_in.status == 303
        cookie = signed_in.headers["Set-Cookie"].split(";")[0]
        connection.request("GET", "/", headers={"Cookie": cookie})
        page = connection.getresponse().read().decode()
        assert '<strong id="me">alice</strong>' in page
        connection.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def test_oidc_mode_names_the_flags_it_lacks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["console", "--oidc-issuer", "https://issuer.example"]) == 2
    err = capsys.readouterr().err
    assert "with --oidc-issuer, also give --oidc-client-id, --public-url" in err
