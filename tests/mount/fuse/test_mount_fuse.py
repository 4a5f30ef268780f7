"""The real thing: a ``drivegate serve`` process, files written over WebDAV,
and a FUSE mount made by ``drivegate mount`` (SQLite backend; one smoke test
on PostgreSQL + S3). Chunk fetches are counted in the server's request log.
Every mount is unmounted in teardown, failing test or not."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core import Drive
from tests.support import ROOT
from tests.support.mounts import (
    LoggedServer,
    drivegate,
    mount_args,
    mount_info,
    mounted,
    put,
    relay,
    unmount,
    wait_for,
    write_noise,
)

# Mount tests run on SQLite; one smoke test runs on PostgreSQL + S3.
SQLITE = pytest.mark.parametrize("backend", ["sqlite-file"], indirect=True)

KIB, MIB = 1024, 1024 * 1024
MIN_CHUNK, MAX_CHUNK = 256 * KIB, 4 * MIB
OFFLINE = b"pinned, available offline"


def noise(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def mnt(server: LoggedServer, tmp_path: Path) -> Iterator[Path]:
    with mounted(server.url, tmp_path / "mnt", tmp_path / "cache", "--cache-size", "64M") as path:
        yield path


class GetCounter:
    """Chunk GETs in the server's log from now on, read once the mount has no
    download running and the server has logged every one it made (a log line
    is written when a response ends, which may be after the client has it)."""

    def __init__(self, server: LoggedServer, mnt: Path) -> None:
        self.server, self.mnt = server, mnt
        self.start_gets = len(server.chunk_gets())
        self.start_fetched = mount_info(mnt)["fetched_chunks"]

    def settled(self) -> list[str]:
        def quiet() -> tuple[list[str]] | None:  # a tuple: true even when nothing was fetched
            info = mount_info(self.mnt)
            gets = self.server.chunk_gets()[self.start_gets :]
            done = info["fetched_chunks"] - self.start_fetched
            return (gets,) if info["fetching_chunks"] == 0 and len(gets) == done else None

        return wait_for(quiet, what="the chunk downloads to settle")[0]


def put_file(dav: httpx.Client, path: str, source: Path) -> None:
    def blocks() -> Iterator[bytes]:
        with open(source, "rb") as file:
            while block := file.read(MIB):
                yield block

    length = str(source.stat().st_size)
    answer = dav.put(path, content=blocks(), headers={"Content-Length": length})
    assert answer.status_code in (201, 204), answer.text


def manifest(dav: httpx.Client, path: Path) -> list[dict[str, Any]]:
    node_id = os.stat(path).st_ino
    answer = dav.get(f"/.drivegate/api/v1/nodes/{node_id}/manifest")
    assert answer.status_code == 200, answer.text
    chunks: list[dict[str, Any]] = answer.json()["chunks"]
    return chunks


def pread(path: Path, size: int, offset: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def read_content(path: Path, block: int = MIB) -> bytes:
    with open(path, "rb") as file:
        return file.read()


@SQLITE
def test_content_is_byte_identical_at_every_size_and_boundary(
    dav: httpx.Client, server: LoggedServer, tmp_path: Path
) -> None:
    sizes = [0, 1, MIN_CHUNK - 1, MIN_CHUNK, MIN_CHUNK + 1, MAX_CHUNK - 1, MAX_CHUNK, MAX_CHUNK + 1,
             9 * MIB + 7]  # fmt: skip
    assert dav.request("MKCOL", "/sizes").status_code == 201
    blobs = {f"/sizes/f{size}.bin": noise(size, seed=size) for size in sizes}
    for path, data in blobs.items():
        put(dav, path, data)
    put(dav, "/naïve name ünïcode.txt", b"hello\n")
    with mounted(server.url, tmp_path / "mnt", tmp_path / "cache", "--cache-size", "64M") as mnt:
        assert sorted(os.listdir(mnt)) == ["naïve name ünïcode.txt", "sizes"]
        assert (mnt / "naïve name ünïcode.txt").read_bytes() == b"hello\n"
        for path, data in blobs.items():
            local = mnt / path.lstrip("/")
            assert os.stat(local).st_size == len(data)
            assert read_content(local) == data, path
        big = mnt / "sizes" / f"f{9 * MIB + 7}.bin"
        chunks = manifest(dav, big)
        assert len(chunks) > 2
        data = blobs[f"/sizes/f{9 * MIB + 7}.bin"]
        for chunk in chunks[1:]:
            edge = chunk["offset"]
            for start in (edge - 1, edge, edge + 1):
                assert pread(big, 3, start) == data[start : start + 3]


@SQLITE
def test_one_byte_deep_in_a_file_fetches_one_chunk(
    dav: httpx.Client, server: LoggedServer, mnt: Path
) -> None:
    data = noise(64 * MIB, seed=7)
    put(dav, "/big.bin", data)
    target = mnt / "big.bin"
    wait_for(target.exists, what="big.bin in the mount")
    chunks = manifest(dav, target)
    at_90 = next(c for c in chunks if c["offset"] + c["length"] > len(data) * 9 // 10)
    offset = at_90["offset"] + at_90["length"] // 2
    gets = GetCounter(server, mnt)
    assert pread(target, 1, offset) == data[offset : offset + 1]
    assert gets.settled() == [at_90["hash"]]


@SQLITE
def test_identical_chunks_are_fetched_and_cached_once(
    dav: httpx.Client, server: LoggedServer, mnt: Path
) -> None:
    data = noise(5 * MIB, seed=12)
    put(dav, "/a.bin", data)
    put(dav, "/b.bin", data)  # another file, same chunks
    put(dav, "/a.bin", data + b"tail")  # a new version sharing all but the last chunk
    wait_for(lambda: os.stat(mnt / "a.bin").st_size == len(data) + 4, what="a.bin's new version")
    gets = GetCounter(server, mnt)
    assert read_content(mnt / "b.bin") == data
    shared = len(gets.settled())
    assert read_content(mnt / "a.bin") == data + b"tail"
    fetched = gets.settled()
    assert len(fetched) == len(set(fetched))
    assert len(fetched) - shared <= 1  # only the chunk the new version changed
    # Chunks are served from memory at once and written to the cache behind the reader.
    wait_for(lambda: mount_info(mnt)["cache"]["chunks"] == len(set(fetched)),
             what="every fetched chunk in the cache, once")  # fmt: skip


@SQLITE
def test_a_streaming_read_touches_only_the_chunks_it_needs(
    dav: httpx.Client, server: LoggedServer, mnt: Path
) -> None:
    data = noise(48 * MIB, seed=8)
    put(dav, "/stream.bin", data)
    target = mnt / "stream.bin"
    wait_for(target.exists, what="stream.bin in the mount")
    chunks = manifest(dav, target)
    first, last = len(chunks) // 3, len(chunks) // 3 + 5
    # The kernel reads whole pages: start on the first page that lies inside chunk `first`.
    start = -(-chunks[first]["offset"] // 4096) * 4096 + 10
    end = chunks[last]["offset"] + 10
    gets = GetCounter(server, mnt)
    with open(target, "rb") as file:
        file.seek(start)
        got = b""
        while len(got) < end - start:
            got += file.read(min(128 * KIB, end - start - len(got)))
    assert got == data[start:end]
    fetched = gets.settled()
    assert len(fetched) == len(set(fetched)), "a chunk was fetched twice"
    index = {c["hash"]: i for i, c in enumerate(chunks)}
    positions = sorted(index[h] for h in fetched)
    assert positions[0] >= first  # nothing before the range
    assert set(range(first, last + 1)) <= set(positions)
    # Beyond the range: at most the kernel's read-ahead (4 MiB) plus ours (8 chunks).
    kernel_end = end + 4 * MIB
    beyond = max(i for i, c in enumerate(chunks) if c["offset"] < kernel_end)
    assert positions[-1] <= beyond + 8


@SQLITE
def test_a_large_file_streams_whole_through_a_smaller_cache(
    dav: httpx.Client, server: LoggedServer, tmp_path: Path
) -> None:
    source = tmp_path / "large.bin"
    size = 256 * MIB + 12345
    digest = write_noise(source, size, seed=9)
    put_file(dav, "/large.bin", source)
    source.unlink()
    limit = 32 * MIB
    cache = tmp_path / "cache"
    worst = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            used = sum(p.stat().st_size for p in (cache / "chunks").rglob("*") if p.is_file())
            worst[0] = max(worst[0], used)
            done.wait(0.05)

    with mounted(server.url, tmp_path / "mnt", cache, "--cache-size", "32M") as mnt:
        gets = GetCounter(server, mnt)
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            hasher = hashlib.sha256()
            with open(mnt / "large.bin", "rb") as file:
                while block := file.read(4 * MIB):
                    hasher.update(block)
        finally:
            done.set()
            watcher.join()
        assert hasher.hexdigest() == digest
        assert mount_info(mnt)["cache"]["used"] <= limit
        fetched = gets.settled()
    assert 0 < worst[0] <= limit
    assert len(fetched) == len(set(fetched)), "a sequential read fetched a chunk twice"


@SQLITE
def test_webdav_changes_show_up_in_the_mount(dav: httpx.Client, mnt: Path) -> None:
    put(dav, "/notes.txt", b"first version\n")
    notes = mnt / "notes.txt"
    wait_for(notes.exists, what="a new file")
    assert notes.read_bytes() == b"first version\n"  # now in the page cache too
    put(dav, "/notes.txt", b"second, longer version\n")
    wait_for(lambda: notes.read_bytes() == b"second, longer version\n", what="new content")
    assert dav.request("MKCOL", "/folder").status_code == 201
    wait_for((mnt / "folder").is_dir, what="a new folder")
    moved = dav.request("MOVE", "/notes.txt", headers={"Destination": "/folder/renamed.txt"})
    assert moved.status_code in (201, 204)
    wait_for(lambda: not notes.exists() and (mnt / "folder" / "renamed.txt").exists(),
             what="a rename")  # fmt: skip
    assert (mnt / "folder" / "renamed.txt").read_bytes() == b"second, longer version\n"
    assert dav.request("DELETE", "/folder").status_code == 204
    wait_for(lambda: not (mnt / "folder").exists(), what="a deletion")
    assert os.listdir(mnt) == []


@SQLITE
def test_a_file_open_across_a_change_never_mixes_versions(dav: httpx.Client, mnt: Path) -> None:
    old, new = noise(3 * MIB, seed=1), noise(3 * MIB, seed=2)
    put(dav, "/doc.bin", old)
    target = mnt / "doc.bin"
    wait_for(target.exists, what="doc.bin")
    with open(target, "rb") as file:
        assert file.read(MIB) == old[:MIB]
        put(dav, "/doc.bin", new)
        wait_for(lambda: pread(target, 16, 0) == new[:16], what="the new version")
        file.seek(0)
        assert file.read() == new


@SQLITE
def test_pins_survive_remount_eviction_and_the_server_going_away(
    dav: httpx.Client, server: LoggedServer, tmp_path: Path
) -> None:
    keep = {f"/keep/{i}.bin": noise(2 * MIB, seed=100 + i) for i in range(3)}
    assert dav.request("MKCOL", "/keep").status_code == 201
    for path, data in keep.items():
        put(dav, path, data)
    put(dav, "/filler.bin", noise(40 * MIB, seed=5))
    put(dav, "/unpinned.bin", noise(MIB, seed=6))
    cache, mountpoint = tmp_path / "cache", tmp_path / "mnt"
    with relay(server.url) as link:
        with mounted(link.url, mountpoint, cache, "--cache-size", "16M") as mnt:
            assert drivegate("pin", str(mnt / "keep")).returncode == 0
            wait_for(lambda: os.getxattr(mnt / "keep", "user.drivegate.cached") == b"6291456",
                     what="the pinned folder to hydrate")  # fmt: skip
            assert os.getxattr(mnt / "keep" / "0.bin", "user.drivegate.state") == OFFLINE
            read_content(mnt / "filler.bin")  # 40 MiB through a 16 MiB cache: eviction pressure
            assert os.getxattr(mnt / "keep", "user.drivegate.cached") == b"6291456"
            put(dav, "/keep/later.bin", noise(MIB, seed=7))  # arrives in a pinned folder
            wait_for(lambda: os.getxattr(mnt / "keep", "user.drivegate.cached") == b"7340032",
                     what="a new file in a pinned folder to hydrate")  # fmt: skip
            assert mount_info(mnt)["cache"]["used"] <= 16 * MIB
        with mounted(link.url, mountpoint, cache, "--cache-size", "16M") as mnt:
            assert os.getxattr(mnt / "keep", "user.drivegate.pinned") == b"1"
            assert os.getxattr(mnt / "keep" / "later.bin", "user.drivegate.state") == OFFLINE
            link.go_offline()
            for path, data in keep.items():
                assert read_content(mnt / path.lstrip("/")) == data
            with pytest.raises(OSError) as failed:
                read_content(mnt / "unpinned.bin")
            assert failed.value.errno == errno.EHOSTDOWN
            assert sorted(os.listdir(mnt)) == ["filler.bin", "keep", "unpinned.bin"]
            put(dav, "/after.txt", b"written while the mount was offline\n")
            link.online = True
            wait_for((mnt / "after.txt").exists, timeout=20, what="catch-up after reconnecting")
            assert read_content(mnt / "unpinned.bin") == noise(MIB, seed=6)


@SQLITE
def test_the_mount_starts_offline_from_its_replica(
    server: LoggedServer, dav: httpx.Client, tmp_path: Path
) -> None:
    put(dav, "/pinned.txt", b"always here\n")
    put(dav, "/online.bin", noise(2 * MIB, seed=3))
    cache, mountpoint = tmp_path / "cache", tmp_path / "mnt"
    with mounted(server.url, mountpoint, cache) as mnt:
        inodes = {name: os.stat(mnt / name).st_ino for name in ("pinned.txt", "online.bin")}
        os.setxattr(mnt / "pinned.txt", "user.drivegate.pinned", b"1")
        wait_for(lambda: os.getxattr(mnt / "pinned.txt", "user.drivegate.cached") == b"12",
                 what="hydration")  # fmt: skip
    server.stop()
    with mounted(server.url, mountpoint, cache) as mnt:
        assert sorted(os.listdir(mnt)) == ["online.bin", "pinned.txt"]
        assert {name: os.stat(mnt / name).st_ino for name in inodes} == inodes  # stable
        assert (mnt / "pinned.txt").read_bytes() == b"always here\n"
        assert os.stat(mnt / "online.bin").st_size == 2 * MIB
        with pytest.raises(OSError) as failed:
            pread(mnt / "online.bin", 10, MIB)
        assert failed.value.errno == errno.EHOSTDOWN
        assert mount_info(mnt)["online"] is False


@SQLITE
def test_statfs_reports_the_quota_and_the_mount_is_private(
    drive: Drive, server: LoggedServer, dav: httpx.Client, tmp_path: Path
) -> None:
    drive.set_quota("alice", 100 * MIB)
    put(dav, "/some.bin", noise(MIB))
    with mounted(server.url, tmp_path / "mnt", tmp_path / "cache") as mnt:
        stats = os.statvfs(mnt)
        assert stats.f_blocks * stats.f_frsize == 100 * MIB
        assert (stats.f_blocks - stats.f_bfree) * stats.f_frsize == MIB
        other = subprocess.run(["runuser", "-u", "nobody", "--", "ls", str(mnt)],
                               capture_output=True, text=True, check=False)  # fmt: skip
        assert other.returncode != 0  # the mount is its user's own (no --allow-other)
        assert "Permission denied" in other.stderr


@SQLITE
def test_pin_unpin_status_and_the_xattr_interface(dav: httpx.Client, mnt: Path) -> None:
    assert dav.request("MKCOL", "/docs").status_code == 201
    put(dav, "/docs/a.txt", b"aaa")
    put(dav, "/too-big.bin", noise(70 * MIB, seed=4))
    docs = mnt / "docs"
    wait_for((docs / "a.txt").exists, what="a.txt")
    assert os.getxattr(docs / "a.txt", "user.drivegate.state") == b"online-only"
    assert set(os.listxattr(docs)) >= {"user.drivegate.state", "user.drivegate.pinned"}
    # Namespaces the mount has nothing in are "not supported", so ls -l stops asking.
    for name, code in (("security.selinux", errno.ENOTSUP), ("user.other", errno.ENODATA)):
        with pytest.raises(OSError) as missing:
            os.getxattr(docs / "a.txt", name)
        assert missing.value.errno == code
    pinned = drivegate("pin", str(docs))
    assert pinned.returncode == 0, pinned.stderr
    wait_for(lambda: os.getxattr(docs / "a.txt", "user.drivegate.cached") == b"3", what="hydration")
    status = drivegate("status", str(docs), str(docs / "a.txt"))
    assert status.returncode == 0
    assert "pinned" in status.stdout and "mount: online" in status.stdout
    refused = drivegate("unpin", str(docs / "a.txt"))
    assert refused.returncode == 1
    assert "pinned folder /docs" in refused.stderr
    assert drivegate("unpin", str(docs)).returncode == 0
    assert os.getxattr(docs / "a.txt", "user.drivegate.state") == b"cached"
    too_big = drivegate("pin", str(mnt / "too-big.bin"))
    assert too_big.returncode == 1
    assert "would not fit in the cache" in too_big.stderr
    assert os.getxattr(mnt / "too-big.bin", "user.drivegate.pinned") == b"0"
    with pytest.raises(OSError) as bad:
        os.setxattr(docs, "user.drivegate.pinned", b"yes")
    assert bad.value.errno == errno.EINVAL
    outside = drivegate("status", str(mnt.parent))
    assert outside.returncode == 1
    assert "not in a drivegate mount" in outside.stderr


@SQLITE
def test_umount_command(server: LoggedServer, tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    with mounted(server.url, mountpoint, tmp_path / "cache"):
        pid = mount_info(mountpoint)["pid"]
        result = drivegate("umount", str(mountpoint))
        assert result.returncode == 0, result.stderr
        assert not os.path.ismount(mountpoint)
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    again = drivegate("umount", str(mountpoint))
    assert again.returncode == 1
    assert "not in a drivegate mount" in again.stderr


@SQLITE
def test_foreground_mount_tells_systemd_ready_and_unmounts_on_sigterm(
    server: LoggedServer, tmp_path: Path
) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    notify = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(notify))
        listener.settimeout(60)
        process = subprocess.Popen(
            [sys.executable, "-m", "drivegate", *mount_args(server.url, mountpoint,
                                                              tmp_path / "cache", "--foreground")],
            env={**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": str(notify)},
            stdin=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert process.stdin is not None
            process.stdin.write("alice-password\n")
            process.stdin.close()
            assert listener.recv(100) == b"READY=1"
            assert os.path.ismount(mountpoint)
            assert os.listdir(mountpoint) == []
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
            assert listener.recv(100) == b"STOPPING=1"
            assert not os.path.ismount(mountpoint)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            unmount(mountpoint)


@pytest.mark.parametrize("backend", ["postgres-s3"], indirect=True)
def test_smoke_on_postgres_and_s3(dav: httpx.Client, mnt: Path) -> None:
    data = noise(6 * MIB, seed=11)
    put(dav, "/smoke.bin", data)
    wait_for((mnt / "smoke.bin").exists, what="smoke.bin")
    assert read_content(mnt / "smoke.bin") == data
    put(dav, "/smoke.bin", b"changed")
    wait_for(lambda: (mnt / "smoke.bin").read_bytes() == b"changed", what="the change")
