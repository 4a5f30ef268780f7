"""A machine that only mounts: ``pip install 'drivegate[mount]'`` into a fresh
virtualenv gets a working ``drivegate mount`` and none of the server's
libraries; the server's commands say which extra they need."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from core import UserInfo
from tests.conftest import BackendSetup
from tests.support import ROOT
from tests.support.mounts import mount_args, unmount
from tests.support.servers import drivegate_server

pytestmark = pytest.mark.slow


def _run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return subprocess.run(
        [str(a) for a in args], input=stdin, capture_output=True, text=True, env=env,
        timeout=600, check=False, cwd="/",
    )  # fmt: skip


@pytest.fixture(scope="module")
def mount_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with drivegate installed from a copy of this checkout, mount extra only."""
    work = tmp_path_factory.mktemp("mount-only")
    source = work / "src"
    shutil.copytree(
        ROOT, source,
        ignore=shutil.ignore_patterns(".git", ".venv", "*.egg-info", "build", "__pycache__",
                                      ".mypy_cache", ".ruff_cache", ".pytest_cache"),
    )  # fmt: skip
    venv = work / "venv"
    made = _run(sys.executable, "-m", "venv", venv)
    assert made.returncode == 0, made.stderr
    installed = _run(venv / "bin" / "pip", "install", "--quiet", f"{source}[mount]")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv


@pytest.mark.parametrize("backend", ["sqlite-file"], indirect=True)
def test_a_mount_only_install_mounts_and_has_no_server_libraries(
    mount_only: Path, backend: BackendSetup, alice: UserInfo, tmp_path: Path
) -> None:
    python, drivegate = mount_only / "bin" / "python", mount_only / "bin" / "drivegate"
    for library in ("sqlalchemy", "minio", "wsgidav", "argon2", "alembic", "psycopg"):
        probe = _run(python, "-c", f"import {library}")
        assert probe.returncode != 0, f"{library} is installed in a mount-only venv"

    assert _run(drivegate, "mount", "--help").returncode == 0
    serve = _run(drivegate, "serve")
    assert serve.returncode == 1
    assert "pip install 'drivegate[server]'" in serve.stderr
    assert "Traceback" not in serve.stderr

    with drivegate_server(backend.env, tmp_path) as url:
        auth = ("alice", "alice-password")
        assert httpx.put(url + "from-server.txt", content=b"x" * 300_000, auth=auth).is_success
        mountpoint, cache = tmp_path / "mnt", tmp_path / "cache"
        mountpoint.mkdir()
        try:
            started = _run(drivegate, *mount_args(url, mountpoint, cache), stdin="alice-password\n")
            assert started.returncode == 0, started.stderr
            assert (mountpoint / "from-server.txt").read_bytes() == b"x" * 300_000
            (mountpoint / "from-mount.txt").write_bytes(b"written through a mount-only install")
            unmounted = _run(drivegate, "umount", mountpoint)  # uploads what is pending first
            assert unmounted.returncode == 0, unmounted.stderr
        finally:
            unmount(mountpoint)
        answer = httpx.get(url + "from-mount.txt", auth=auth)
        assert answer.content == b"written through a mount-only install"
