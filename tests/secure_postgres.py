"""A PostgreSQL server that behaves like RDS where the suite's embedded one cannot: it listens
on TCP, asks every client for a SCRAM password, and serves TLS with a certificate from a test
CA, issued for 127.0.0.1 only.

The suite's server trusts every local login, so a revoked password would change nothing; this
one refuses it. It runs Debian's PostgreSQL (the embedded build has no TLS) as the
unprivileged `postgres` user.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from devstack.ports import free_port

POSTGRES_BIN_PATH = Path("/usr/lib/postgresql/15/bin")
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"
# What the certificate names; the server also listens on OTHER_ADDRESS, which it does not name.
ADDRESS = "127.0.0.1"
OTHER_ADDRESS = "127.0.0.2"


@dataclass(frozen=True)
class Certificates:
    ca: Path
    other_ca: Path  # a CA that signed nothing the server shows
    server_cert: Path
    server_key: Path


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path) -> Certificates:
    for name in ("ca", "other-ca"):
        openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN=picforge test {name}",
            cwd=directory,
        )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", f"/CN={ADDRESS}",
        cwd=directory,
    )  # fmt: skip
    (directory / "san.ext").write_text(f"subjectAltName=IP:{ADDRESS}\n")
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem",
        cwd=directory,
    )  # fmt: skip
    return Certificates(
        ca=directory / "ca.pem",
        other_ca=directory / "other-ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
    )


class SecurePostgres:
    """`with SecurePostgres() as server:` a running server; `server.url(...)` to reach it."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="picforge-securepg-"))
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.certificates = make_certificates(self.directory)
        self._data = self.directory / "data"
        self._started = False

    def url(
        self, *, user: str = SUPERUSER, password: str | None = None, db: str = "postgres"
    ) -> str:
        secret = self.password if password is None else password
        return f"postgresql://{user}:{secret}@{ADDRESS}:{self.port}/{db}"

    def _run(self, binary: str, *args: str) -> None:
        subprocess.run(
            [str(POSTGRES_BIN_PATH / binary), *args],
            check=True,
            capture_output=True,
            user=SYSTEM_USER,
            timeout=60,
        )

    def start(self) -> SecurePostgres:
        account = pwd.getpwnam(SYSTEM_USER)
        for path in (self.directory, *self.directory.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)
        self.certificates.server_key.chmod(0o600)
        (self.directory / "pw").write_text(self.password)
        self._run(
            "initdb", "-D", str(self._data), "-U", SUPERUSER, f"--pwfile={self.directory / 'pw'}",
            "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "--encoding=utf8",
        )  # fmt: skip
        with (self._data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '{ADDRESS},{OTHER_ADDRESS}'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.directory}'\nssl = on\n"
                f"ssl_cert_file = '{self.certificates.server_cert}'\n"
                f"ssl_key_file = '{self.certificates.server_key}'\n"
            )
        (self._data / "pg_hba.conf").write_text(
            "local all all scram-sha-256\nhost all all 127.0.0.0/8 scram-sha-256\n"
        )
        self._run("pg_ctl", "-D", str(self._data), "-w", "-l", str(self.directory / "log"), "start")
        self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self._run("pg_ctl", "-D", str(self._data), "-w", "-m", "fast", "stop")
            self._started = False
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SecurePostgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
