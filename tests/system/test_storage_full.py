"""A full disk answers 507 Insufficient Storage on both faces (not 503, which clients
retry at once) and changes nothing. The disk is a real tmpfs of 2 MiB, filled up."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from core import Drive, StorageFull, StorageUnavailable, UserInfo, load_settings
from fusemount.client import _error as client_error
from fusemount.errors import QuotaExceeded
from fusemount.uploader import _reason as upload_reason
from tests.conftest import ALICE, BackendSetup
from tests.support.servers import drivegate_server

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@contextmanager
def tiny_tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` for the block (unmounted after)."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def fill(path: Path) -> None:
    """Write a file under ``path`` until its file system has no block left."""
    fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for block in (b"\0" * 65536, b"\0" * 4096, b"\0"):
            try:
                while os.write(fd, block):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


@needs_root
def test_a_full_chunk_store_answers_507_on_both_faces(
    backend: BackendSetup, drive: Drive, alice: UserInfo, tmp_path: Path
) -> None:
    """On the sqlite-file backend only: its chunk store is a local directory, which a
    small tmpfs makes full; moto's S3 has no size to exhaust, and filling a
    PostgreSQL cluster's disk would take the shared test cluster down with it."""
    if backend.name != "sqlite-file":
        pytest.skip("only a local chunk store can be put on a tiny tmpfs here")
    with tiny_tmpfs(tmp_path / "small") as small:
        env = {**backend.env, "DRIVEGATE_STORE_URL": f"file://{small}/chunks"}
        with (
            drivegate_server(env, cwd=tmp_path) as url,
            httpx.Client(base_url=url, auth=ALICE, timeout=60) as http,
        ):
            assert http.put("/kept.txt", content=b"kept").status_code == 201
            fill(small)
            data = os.urandom(3 * 1024 * 1024)
            for path in ("/big.bin", "/kept.txt"):
                response = http.put(path, content=data)
                assert response.status_code == 507, response.text
                assert "full" in response.text
            assert http.get("/big.bin").status_code == 404
            assert http.get("/kept.txt").content == b"kept"
            chunk = data[:100_000]
            digest = hashlib.sha256(chunk).hexdigest()
            stored = http.put(f".drivegate/api/v1/chunks/{digest}", content=chunk)
            assert stored.status_code == 507
            assert stored.json()["error"]["code"] == "storage_full"
    assert [n.name for n in drive.listdir(alice.id, "/")] == ["kept.txt"]
    assert len(drive.versions(alice.id, "/kept.txt")) == 1


@needs_root
def test_a_full_database_disk_is_storage_full(tmp_path: Path) -> None:
    """SQLite's "database or disk is full" becomes StorageFull (507), not
    StorageUnavailable (503). (PostgreSQL's disk_full, SQLSTATE 53100, maps the same
    way; its disk cannot be filled in a test.)"""
    with tiny_tmpfs(tmp_path / "small", size="4m") as small:
        settings = load_settings(data_dir=str(small), store_url=f"file://{tmp_path}/chunks")
        with Drive.open(settings) as drive:
            alice = drive.add_user("alice", "alice-password")
            fill(small)
            with pytest.raises(StorageFull):
                for number in range(10_000):  # the WAL may hold a few before it must grow
                    drive.mkdir(alice.id, f"/folder-{number}")
            os.unlink(small / "filler")


def test_the_mount_tells_a_full_server_disk_from_a_quota() -> None:
    """What ``drivegate status`` says of an upload the server refused with 507."""
    full = client_error(507, "storage_full", "the chunk store is full")
    quota = client_error(507, "quota_exceeded", "over quota")
    assert isinstance(full, QuotaExceeded) and isinstance(quota, QuotaExceeded)
    assert upload_reason(full) == "the server's disk is full"
    assert upload_reason(quota) == "quota exceeded"


def test_an_object_store_that_says_it_is_full_is_storage_full() -> None:
    """moto never fills up, so the translation of the S3 error codes a full MinIO or
    a Ceph RGW quota answer is checked on its own."""
    from minio.error import S3Error
    from urllib3 import HTTPResponse

    from core.store.s3 import write_error

    def refusal(code: str) -> S3Error:
        return S3Error(HTTPResponse(status=507), code, "no room", "/b/k", "r", "h")

    assert isinstance(write_error(refusal("XMinioStorageFull"), "put"), StorageFull)
    assert isinstance(write_error(refusal("QuotaExceeded"), "put"), StorageFull)
    other = write_error(refusal("SlowDown"), "put")
    assert isinstance(other, StorageUnavailable) and not isinstance(other, StorageFull)
