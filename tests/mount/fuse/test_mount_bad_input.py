"""Bad input to the mount: each case gets a clear one-line error (or a clear
errno) and changes nothing — no mount is left behind, no cache dir is
created, nothing corrupt is cached."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import subprocess
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import httpx
import pytest

from core import Drive
from tests.support.mounts import (
    LoggedServer,
    drivegate,
    mount_args,
    mount_info,
    mounted,
    relay,
    unmount,
    wait_for,
)

SQLITE = pytest.mark.parametrize("backend", ["sqlite-file"], indirect=True)
MIB = 1024 * 1024


def refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit status 1 and one line on stderr that says why."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def nothing_left(mountpoint: Path, cache_dir: Path) -> None:
    assert not os.path.ismount(mountpoint)
    assert not cache_dir.exists()


@SQLITE
def test_wrong_password_mounts_nothing(server: LoggedServer, tmp_path: Path) -> None:
    mountpoint, cache = tmp_path / "mnt", tmp_path / "cache"
    mountpoint.mkdir()
    result = drivegate(*mount_args(server.url, mountpoint, cache), stdin="not-her-password\n")
    refused(result, "refused the login of alice", "wrong password or token")
    nothing_left(mountpoint, cache)


@SQLITE
def test_wrong_token_mounts_nothing_and_a_right_one_works(
    server: LoggedServer, drive: Drive, tmp_path: Path
) -> None:
    mountpoint, cache = tmp_path / "mnt", tmp_path / "cache"
    mountpoint.mkdir()
    token = tmp_path / "token"
    token.write_text("dgt_" + "x" * 43 + "\n")
    args = ["mount", server.url, str(mountpoint), "--user", "alice", "--token-file", str(token),
            "--cache-dir", str(cache)]  # fmt: skip
    refused(drivegate(*args), "wrong password or token")
    nothing_left(mountpoint, cache)
    token.write_text(drive.create_token("alice", "laptop") + "\n")
    try:
        assert drivegate(*args).returncode == 0
        assert os.path.ismount(mountpoint)
    finally:
        unmount(mountpoint)


class _NotDrivegate(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><body>my blog</body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


def test_a_url_that_is_not_a_drivegate_server(tmp_path: Path) -> None:
    other = ThreadingHTTPServer(("127.0.0.1", 0), _NotDrivegate)
    Thread(target=other.serve_forever, daemon=True).start()
    mountpoint, cache = tmp_path / "mnt", tmp_path / "cache"
    mountpoint.mkdir()
    try:
        url = f"http://127.0.0.1:{other.server_address[1]}/"
        refused(drivegate(*mount_args(url, mountpoint, cache), stdin="pw\n"),
                "is not a drivegate server")  # fmt: skip
    finally:
        other.shutdown()
        other.server_close()
    nothing_left(mountpoint, cache)


def test_an_unreachable_server_without_a_replica(tmp_path: Path) -> None:
    mountpoint, cache = tmp_path / "mnt", tmp_path / "cache"
    mountpoint.mkdir()
    result = drivegate(*mount_args("http://127.0.0.1:9/", mountpoint, cache), stdin="pw\n")
    refused(result, "cannot reach", "no local copy")
    nothing_left(mountpoint, cache)


def test_bad_mountpoints(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    url = "http://127.0.0.1:9/"  # never asked: the mountpoint is checked first
    refused(drivegate(*mount_args(url, tmp_path / "missing", cache), stdin="pw\n"),
            "does not exist")  # fmt: skip
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("x")
    refused(drivegate(*mount_args(url, busy, cache), stdin="pw\n"), "is not empty")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    refused(drivegate(*mount_args(url, a_file, cache), stdin="pw\n"), "is not a folder")
    assert not cache.exists()


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    token = tmp_path / "token"
    token.write_text("t")
    both = drivegate("mount", "http://h/", str(mountpoint), "--user", "a", "--password-stdin",
                     "--token-file", str(token), stdin="pw\n")  # fmt: skip
    assert both.returncode == 2
    assert "exactly one of --password-stdin and --token-file" in both.stderr
    not_http = drivegate("mount", "ftp://h/", str(mountpoint), "--user", "a", "--password-stdin",
                         stdin="pw\n")  # fmt: skip
    assert not_http.returncode == 2
    tiny = drivegate("mount", "http://h/", str(mountpoint), "--user", "a", "--password-stdin",
                     "--cache-size", "1M", stdin="pw\n")  # fmt: skip
    assert tiny.returncode == 2
    assert "at least 16M" in tiny.stderr


@SQLITE
def test_a_second_mount_on_the_same_cache_dir_is_refused(server: LoggedServer,
                                                         tmp_path: Path) -> None:  # fmt: skip
    """One line naming the cache dir, who holds it and the way out (--cache-dir);
    the first mount goes on as if nothing happened."""
    cache, one, two = tmp_path / "cache", tmp_path / "one", tmp_path / "two"
    with mounted(server.url, one, cache):
        pid = mount_info(one)["pid"]
        two.mkdir()
        for extra in ((), ("--foreground",)):
            result = drivegate(*mount_args(server.url, two, cache, *extra),
                               stdin="alice-password\n")  # fmt: skip
            refused(result, f"cache dir {cache} is in use by another mount",
                    f"(pid {pid} at {one})", "--cache-dir")  # fmt: skip
            assert "Traceback" not in result.stderr + result.stdout
            assert not os.path.ismount(two)
        assert mount_info(one)["pid"] == pid
        (one / "still.txt").write_bytes(b"the first mount works")
        assert (one / "still.txt").read_bytes() == b"the first mount works"
        with mounted(server.url, two, tmp_path / "other-cache") as second:  # the way out
            # The first mount uploads a moment after the close; the second sees it then.
            wait_for(lambda: (second / "still.txt").read_bytes() == b"the first mount works",
                     timeout=30, what="still.txt in the second")  # fmt: skip


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: room for the replica, not for the chunks."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@SQLITE
def test_a_full_cache_disk_still_reads_from_the_server(
    dav: httpx.Client, server: LoggedServer, tmp_path: Path, tiny_disk: Path
) -> None:
    data = random.Random(3).randbytes(6 * MIB)
    assert dav.put("/six.bin", content=data).status_code == 201
    with mounted(server.url, tmp_path / "mnt", tiny_disk / "cache") as mnt:
        for _ in range(2):
            assert (mnt / "six.bin").read_bytes() == data
    for chunk in (tiny_disk / "cache" / "chunks").rglob("*"):
        if chunk.is_file():
            assert hashlib.sha256(chunk.read_bytes()).hexdigest() == chunk.name
    assert os.listdir(tiny_disk / "cache" / "tmp") == []


@SQLITE
def test_a_chunk_that_does_not_match_its_hash_is_eio(
    dav: httpx.Client, server: LoggedServer, tmp_path: Path
) -> None:
    data = random.Random(4).randbytes(3 * MIB)
    assert dav.put("/damaged.bin", content=data).status_code == 201
    cache = tmp_path / "cache"
    with relay(server.url) as link, mounted(link.url, tmp_path / "mnt", cache) as mnt:
        target = mnt / "damaged.bin"
        node = os.stat(target).st_ino
        chunks = dav.get(f"/.drivegate/api/v1/nodes/{node}/manifest").json()["chunks"]
        bad = chunks[-1]
        link.corrupt.add(bad["hash"])
        fd = os.open(target, os.O_RDONLY)
        try:
            assert os.pread(fd, 100, 0) == data[:100]
            for _ in range(2):  # refused each time: never cached
                with pytest.raises(OSError) as failed:
                    os.pread(fd, 100, bad["offset"])
                assert failed.value.errno == errno.EIO
        finally:
            os.close(fd)
        assert not (cache / "chunks" / bad["hash"][:2] / bad["hash"]).exists()
    log = (cache / "mount.log").read_text()
    assert f"chunk {bad['hash']} from the server hashes to" in log
