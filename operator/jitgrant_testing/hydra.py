"""Ory Hydra, a real OAuth2/OIDC identity provider, on 127.0.0.1 over TLS for the tests.

The binary is built from Hydra's Go module at a pinned version (`tests/hydra/build.sh`, cached per
version under ~/.cache/jitgrant/hydra/). `Hydra` starts one server in a temporary directory: a CA and
a serving certificate from `jitgrant_testing.tls`, an in-memory database (`dsn: memory`), JWT access
tokens (`strategies.access_token: jwt`), public and admin ports on loopback. Through the admin API it
makes `client_credentials` machine clients, adds a signing key to `hydra.jwt.access-token` (Hydra then
signs with the newest key at once: rotation) and deletes one (what an IdP does with a compromised
key). `stop()` ends the process and removes the directory, so nothing outlives the object.

Like `controlplane`, this module imports only the standard library and the test TLS helpers, so a
person can start one (`python -m jitgrant_testing.hydra`) and point an agent at it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from jitgrant_testing.controlplane import _Process, _set_pdeathsig, free_port
from jitgrant_testing.tls import WebhookTLS, generate_webhook_tls

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "tests" / "hydra" / "build.sh"
# The key set Hydra signs JWT access tokens with (its name is fixed in Hydra's source).
ACCESS_TOKEN_KEY_SET = "hydra.jwt.access-token"


class HydraError(RuntimeError):
    """Hydra could not be built, did not come up, or its API refused a call."""


class HydraUnavailable(HydraError):
    """No Go toolchain or no C compiler: Hydra cannot be built here."""


def ensure_hydra(*, stream: bool = True) -> Path:
    """Build Hydra (or reuse the cached binary) with tests/hydra/build.sh; return its directory.

    `JITGRANT_HYDRA_BIN` names a directory holding a prebuilt `hydra` and skips the build.
    """
    prebuilt = os.environ.get("JITGRANT_HYDRA_BIN")
    if prebuilt:
        return Path(prebuilt)
    if shutil.which("go") is None:
        raise HydraUnavailable("no Go toolchain on PATH (needed to build Ory Hydra from its Go module)")
    proc = subprocess.run(  # noqa: S603 - our own script
        ["/bin/bash", str(BUILD_SCRIPT)],
        stdout=subprocess.PIPE,
        stderr=None if stream else subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode == 2:
        raise HydraUnavailable(f"{BUILD_SCRIPT} cannot build here (exit 2: no Go toolchain or no C compiler)")
    if proc.returncode != 0:
        detail = "" if stream else f": {proc.stderr.strip()[-2000:]}"
        raise HydraError(f"{BUILD_SCRIPT} failed with exit code {proc.returncode}{detail}")
    return Path(proc.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class MachineClient:
    """An OAuth2 client allowed the client_credentials grant; its id is the tokens' `sub`."""

    client_id: str
    secret: str
    audience: tuple[str, ...]


class Hydra:
    """One Hydra server (`hydra serve all`) on two loopback ports with TLS.

    >>> with Hydra() as idp:
    ...     client = idp.create_client(audience=["jitgrant"])
    ...     token = idp.token(client, audience="jitgrant")
    """

    def __init__(
        self,
        bin_dir: Path | str | None = None,
        *,
        access_token_ttl: str = "10m",  # noqa: S107 - a lifetime, not a secret
        start_timeout: float = 60.0,
        login_url: str | None = None,
    ) -> None:
        self._bin_dir = Path(bin_dir) if bin_dir is not None else None
        self._access_token_ttl = access_token_ttl
        self._start_timeout = start_timeout
        # For the authorization code flow (the console's sign-in): the login and consent app the test
        # runs, which accepts whoever it is told to through the admin API (GET {login_url}/login and
        # {login_url}/consent).
        self._login_url = login_url
        self._dir: Path | None = None
        self._process: _Process | None = None
        self._tls: WebhookTLS | None = None
        self._public_port = 0
        self._admin_port = 0
        self._issuer = ""

    # -- where it is ---------------------------------------------------------------------------

    @property
    def dir(self) -> Path:
        if self._dir is None:
            raise HydraError("Hydra is not running")
        return self._dir

    @property
    def public_url(self) -> str:
        self.dir  # noqa: B018 - raises when not running
        return f"https://127.0.0.1:{self._public_port}"

    @property
    def admin_url(self) -> str:
        self.dir  # noqa: B018 - raises when not running
        return f"https://127.0.0.1:{self._admin_port}"

    @property
    def issuer(self) -> str:
        """The issuer exactly as Hydra's discovery document and its tokens' `iss` spell it."""
        self.dir  # noqa: B018 - raises when not running
        return self._issuer

    @property
    def ca_path(self) -> Path:
        """The CA that signed Hydra's serving certificate (PEM): what a client must trust."""
        if self._tls is None:
            raise HydraError("Hydra is not running")
        return self._tls.cafile

    @property
    def log_path(self) -> Path:
        return self.dir / "hydra.log"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))

    def log_tail(self, lines: int = 30) -> str:
        return self._process.log_tail(lines) if self._process is not None else "(not started)"

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> Hydra:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._dir is not None:
            raise HydraError("already started")
        binary = (self._bin_dir or ensure_hydra()) / "hydra"
        if not os.access(binary, os.X_OK):
            raise HydraError(f"{binary} missing: run tests/hydra/build.sh")
        self._dir = Path(tempfile.mkdtemp(prefix="jitgrant-hydra-"))
        try:
            self._tls = generate_webhook_tls(self._dir / "tls", hosts=["127.0.0.1"])
            self._public_port, self._admin_port = free_port(), free_port()
            config = self._dir / "hydra.json"
            config.write_text(json.dumps(self._config(), indent=2))
            config.chmod(0o600)  # holds the system secret
            self._process = _Process(
                "hydra", [str(binary), "serve", "all", "--config", str(config)], self.log_path
            )
            self._start_process()
            self._issuer = str(self.discovery()["issuer"])
        except BaseException:
            self.stop()
            raise

    def _config(self) -> dict[str, Any]:
        tls = self._tls
        assert tls is not None
        return {
            "dsn": "memory",
            "serve": {
                "public": {"host": "127.0.0.1", "port": self._public_port},
                "admin": {"host": "127.0.0.1", "port": self._admin_port},
                "tls": {
                    "enabled": True,
                    "cert": {"path": str(tls.certfile)},
                    "key": {"path": str(tls.pkeyfile)},
                },
            },
            "urls": {
                "self": {"issuer": f"https://127.0.0.1:{self._public_port}"},
                **(
                    {"login": f"{self._login_url}/login", "consent": f"{self._login_url}/consent"}
                    if self._login_url
                    else {}
                ),
            },
            "secrets": {"system": [secrets.token_urlsafe(32)]},
            "strategies": {"access_token": "jwt"},
            "ttl": {"access_token": self._access_token_ttl},
            "log": {"level": "warn", "format": "text"},
            "sqa": {"opt_out": True},  # no usage telemetry (and no network call for it)
        }

    def _start_process(self) -> None:
        assert self._process is not None
        # A clean environment: Hydra reads every config key from environment variables too (DSN, ...).
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.dir)}
        with self.log_path.open("ab") as log:
            self._process.popen = subprocess.Popen(  # noqa: S603 - our own binary and flags
                self._process.argv,
                cwd=self.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_set_pdeathsig,  # only calls prctl: safe before exec
            )
        deadline = time.monotonic() + self._start_timeout
        while True:
            code = self._process.exited()
            if code is not None:
                raise HydraError(f"hydra exited with code {code} at start:\n{self.log_tail()}")
            try:
                if self._request("GET", f"{self.admin_url}/health/ready")[0] == 200:
                    return
            except (OSError, HydraError):
                pass
            if time.monotonic() > deadline:
                raise HydraError(f"hydra not ready after {self._start_timeout}s:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self, timeout: float = 10.0) -> None:
        if self._process is not None:
            self._process.stop(timeout)
            self._process = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._tls = None

    # -- HTTP ----------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))  # noqa: S310 - https to our own server
        try:
            with urllib.request.urlopen(request, context=self.ssl_context(), timeout=10) as response:  # noqa: S310
                return int(response.status), response.read()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read()

    def _json(self, method: str, url: str, payload: Any = None, *, expect: int = 200) -> Any:
        body = json.dumps(payload).encode() if payload is not None else None
        status, data = self._request(method, url, body=body, headers={"Content-Type": "application/json"})
        if status != expect:
            raise HydraError(f"{method} {url} answered HTTP {status} (expected {expect}): {data[:500]!r}")
        return json.loads(data) if data else None

    def discovery(self) -> dict[str, Any]:
        """Hydra's OIDC discovery document, as the operator fetches it."""
        document: dict[str, Any] = self._json("GET", f"{self.public_url}/.well-known/openid-configuration")
        return document

    def published_keys(self) -> list[dict[str, Any]]:
        """The public JWKS Hydra publishes (every broadcast key set)."""
        keys: list[dict[str, Any]] = self._json("GET", f"{self.public_url}/.well-known/jwks.json")["keys"]
        return keys

    # -- clients and tokens --------------------------------------------------------------------

    def create_client(
        self, *, audience: Sequence[str], access_token_lifespan: str | None = None
    ) -> MachineClient:
        """A client_credentials machine client allowed to ask for tokens for these audiences.

        `access_token_lifespan` (e.g. "2s") overrides the server's token lifetime for this client.
        """
        payload: dict[str, Any] = {
            "client_name": f"jitgrant-test-{uuid.uuid4().hex[:8]}",
            "grant_types": ["client_credentials"],
            "response_types": ["token"],
            "token_endpoint_auth_method": "client_secret_basic",
            "audience": list(audience),
            "access_token_strategy": "jwt",
        }
        if access_token_lifespan is not None:
            payload["client_credentials_grant_access_token_lifespan"] = access_token_lifespan
        created = self._json("POST", f"{self.admin_url}/admin/clients", payload, expect=201)
        return MachineClient(
            client_id=str(created["client_id"]),
            secret=str(created["client_secret"]),
            audience=tuple(audience),
        )

    def create_code_client(
        self,
        *,
        redirect_uri: str,
        scope: str = "openid email profile groups",
        id_token_lifespan: str | None = None,
    ) -> str:
        """A public client for the authorization code flow with PKCE (no secret): its client_id."""
        payload: dict[str, Any] = {
            "client_name": f"jitgrant-console-{uuid.uuid4().hex[:8]}",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "redirect_uris": [redirect_uri],
            "scope": scope,
        }
        if id_token_lifespan is not None:
            payload["authorization_code_grant_id_token_lifespan"] = id_token_lifespan
        created = self._json("POST", f"{self.admin_url}/admin/clients", payload, expect=201)
        return str(created["client_id"])

    def accept_login(self, challenge: str, *, subject: str) -> str:
        """The login app's answer: the person is `subject`; returns where to send the browser next."""
        answer = self._json(
            "PUT",
            f"{self.admin_url}/admin/oauth2/auth/requests/login/accept?login_challenge={urllib.parse.quote(challenge)}",
            {"subject": subject, "remember": False},
        )
        return str(answer["redirect_to"])

    def accept_consent(self, challenge: str, *, id_token_claims: Mapping[str, Any]) -> str:
        """The consent app's answer: every scope asked, these claims in the ID token."""
        quoted = urllib.parse.quote(challenge)
        asked = self._json(
            "GET", f"{self.admin_url}/admin/oauth2/auth/requests/consent?consent_challenge={quoted}"
        )
        answer = self._json(
            "PUT",
            f"{self.admin_url}/admin/oauth2/auth/requests/consent/accept?consent_challenge={quoted}",
            {
                "grant_scope": asked.get("requested_scope") or [],
                "grant_access_token_audience": asked.get("requested_access_token_audience") or [],
                "remember": False,
                "session": {"id_token": dict(id_token_claims)},
            },
        )
        return str(answer["redirect_to"])

    def token(self, client: MachineClient, *, audience: str) -> str:
        """An access token (a JWT) from the token endpoint, client_credentials grant, for `audience`."""
        basic = base64.b64encode(
            f"{urllib.parse.quote(client.client_id)}:{urllib.parse.quote(client.secret)}".encode()
        ).decode()
        status, data = self._request(
            "POST",
            f"{self.public_url}/oauth2/token",
            body=urllib.parse.urlencode({"grant_type": "client_credentials", "audience": audience}).encode(),
            headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
        )
        if status != 200:
            raise HydraError(f"the token endpoint answered HTTP {status}: {data[:500]!r}")
        answer = json.loads(data)
        if answer.get("token_type", "").lower() != "bearer":
            raise HydraError(f"the token endpoint returned no bearer token: {answer}")
        token: str = answer["access_token"]
        return token

    # -- signing keys --------------------------------------------------------------------------

    def rotate_signing_key(self, *, alg: str = "RS256") -> str:
        """Add a new key to the access-token key set; Hydra signs with the newest key from now on.

        Returns its kid. Hydra orders keys by creation time in whole seconds, so two rotations in the
        same second would leave the choice to the database: this waits until the second has turned.
        """
        time.sleep(1.1)
        kid = f"rotated-{uuid.uuid4().hex[:12]}"
        created = self._json(
            "POST",
            f"{self.admin_url}/admin/keys/{ACCESS_TOKEN_KEY_SET}",
            {"alg": alg, "kid": kid, "use": "sig"},
            expect=201,
        )
        kids = {str(key.get("kid")) for key in created["keys"]}
        if kid not in kids:
            raise HydraError(f"Hydra created keys {sorted(kids)}, not {kid!r}")
        return kid

    def delete_signing_key(self, kid: str) -> None:
        """Remove a key from the access-token key set: it is no longer published in the JWKS."""
        self._json("DELETE", f"{self.admin_url}/admin/keys/{ACCESS_TOKEN_KEY_SET}/{kid}", expect=204)


def main(argv: Sequence[str] | None = None) -> int:
    """Start Hydra for a person: prints where it is and a machine client, runs until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m jitgrant_testing.hydra", description=main.__doc__)
    parser.add_argument("--audience", default="jitgrant", help="the audience the client may ask for")
    args = parser.parse_args(argv)
    with Hydra() as idp:
        client = idp.create_client(audience=[args.audience])
        print(f"issuer:    {idp.issuer}\nadmin:     {idp.admin_url}\nCA:        {idp.ca_path}")
        print(f"client:    {client.client_id}\nsecret:    {client.secret}")
        print(f"a token:   {idp.token(client, audience=args.audience)}", flush=True)
        try:
            while idp._process is not None and idp._process.exited() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
