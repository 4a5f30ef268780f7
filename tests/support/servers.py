"""Real backing services for the tests: a throwaway PostgreSQL cluster
(Debian's binaries, run as the ``postgres`` user) and an S3 endpoint (moto's
ThreadedMotoServer) on loopback, both started once per test session; and
``drivegate_server``, a ``drivegate serve`` yielding its URL (started by
``tests.support.serve``)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.support.serve import serving


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found: run scripts/test (installs them)")
    return Path(found[-1]).parent


def _as_postgres(*args: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)


@dataclass
class PostgresCluster:
    port: int
    admin_url: str
    _counter: int = 0

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, template: str | None = None) -> str:
        self._counter += 1
        name = f"t{os.getpid()}_{self._counter}"
        clause = f" TEMPLATE {template}" if template else ""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}{clause}")
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    bindir = _pg_bin()
    workdir = Path(tempfile.mkdtemp(prefix="dg-pg-"))
    os.chmod(workdir, 0o755)
    datadir = workdir / "data"
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres(
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "--no-sync",
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
        ),
        check=True,
        capture_output=True,
    )
    options = (
        f"-k {workdir} -c listen_addresses=127.0.0.1 -p {port} -c fsync=off -c max_connections=300"
    )
    subprocess.run(
        _as_postgres(
            str(bindir / "pg_ctl"),
            "-D",
            str(datadir),
            "-o",
            options,
            "-l",
            str(workdir / "log"),
            "-w",
            "start",
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield PostgresCluster(
            port=port, admin_url=f"postgresql://postgres@127.0.0.1:{port}/postgres"
        )
    finally:
        subprocess.run(
            _as_postgres(str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "stop"),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def s3_endpoint() -> Iterator[str]:
    """An S3 endpoint URL on loopback (moto)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextmanager
def drivegate_server(
    env: dict[str, str], cwd: Path, *options: str, log: Path | None = None
) -> Iterator[str]:
    """A real ``drivegate serve`` process on a free loopback port (with extra
    ``options`` for serve); yields its URL. (``serve.serving`` gives the process too.)

    ``log``: where its log (one line per request) goes; nowhere by default.
    """
    with serving(*options, env=env, cwd=cwd, log=log) as server:
        yield server.url
