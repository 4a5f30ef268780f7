"""Preallocation on a real mount over a real ``drivegate serve`` (SQLite).

pyfuse3 (3.5.0, the latest) registers no fallocate handler, so libfuse answers
ENOSYS and the kernel answers EOPNOTSUPP to fallocate(2) in every mode, before
the mount sees anything. ``posix_fallocate`` (glibc, so Python's
``os.posix_fallocate`` and ``fallocate --posix``) then falls back to writing a
zero byte into every block it must allocate: ordinary writes, which the mount
takes like any other. These tests pin down both halves (docs/mount.md,
"Preallocation")."""

from __future__ import annotations

import ctypes
import errno
import os
import re
import subprocess
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.support.mounts import LoggedServer, mounted, on_server, put, wait_for

SQLITE = pytest.mark.parametrize("backend", ["sqlite-file"], indirect=True)
pytestmark = SQLITE
MIB = 1024 * 1024

KEEP_SIZE, PUNCH_HOLE, COLLAPSE_RANGE, ZERO_RANGE, INSERT_RANGE = 0x1, 0x2, 0x8, 0x10, 0x20
MODES = {
    "plain": 0,
    "keep size": KEEP_SIZE,
    "punch hole": PUNCH_HOLE | KEEP_SIZE,
    "collapse range": COLLAPSE_RANGE,
    "zero range": ZERO_RANGE,
    "insert range": INSERT_RANGE,
}


@pytest.fixture
def mnt(server: LoggedServer, tmp_path: Path) -> Iterator[Path]:
    with mounted(server.url, tmp_path / "mnt", tmp_path / "cache", "--upload-delay", "0") as path:
        yield path


def fallocate(fd: int, mode: int, offset: int, length: int) -> int:
    """fallocate(2) itself (Python has only posix_fallocate): 0, or the errno."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    return 0 if libc.fallocate(fd, mode, offset, length) == 0 else ctypes.get_errno()


def util(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["fallocate", *args], capture_output=True, text=True, check=False)


def test_posix_fallocate_grows_a_new_file_with_zeros_that_upload(
    dav: httpx.Client, mnt: Path
) -> None:
    size = 3 * MIB + 5
    fd = os.open(mnt / "prealloc.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, size)
        assert os.fstat(fd).st_size == size
    finally:
        os.close(fd)
    assert (mnt / "prealloc.bin").read_bytes() == bytes(size)
    wait_for(partial(on_server, dav, "/prealloc.bin", bytes(size)), timeout=60,
             what="the preallocated file on the server")  # fmt: skip


def test_posix_fallocate_inside_the_size_changes_nothing_and_past_it_extends(
    dav: httpx.Client, mnt: Path
) -> None:
    put(dav, "/notes.txt", b"hello world")
    notes = mnt / "notes.txt"
    wait_for(notes.exists, what="notes.txt")
    fd = os.open(notes, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, 5)  # inside: size and bytes stay
        assert os.fstat(fd).st_size == 11
        assert os.pread(fd, 100, 0) == b"hello world"
        os.posix_fallocate(fd, 4096, 8192)  # past the end: zeros up to offset + len
        assert os.fstat(fd).st_size == 4096 + 8192
    finally:
        os.close(fd)
    expected = b"hello world" + bytes(4096 + 8192 - 11)
    assert notes.read_bytes() == expected
    wait_for(partial(on_server, dav, "/notes.txt", expected), timeout=60, what="the upload")


def test_fallocate_itself_is_refused_in_every_mode_and_changes_nothing(mnt: Path) -> None:
    target = mnt / "kept.bin"
    target.write_bytes(b"k" * 10_000)
    fd = os.open(target, os.O_RDWR)
    try:
        for name, mode in MODES.items():
            assert fallocate(fd, mode, 0, 4096) == errno.EOPNOTSUPP, name
            assert fallocate(fd, mode, 8192, 2 * MIB) == errno.EOPNOTSUPP, name
        assert os.fstat(fd).st_size == 10_000
    finally:
        os.close(fd)
    assert target.read_bytes() == b"k" * 10_000


def test_the_fallocate_command_works_with_posix(mnt: Path) -> None:
    plain = util("-l", "1MiB", str(mnt / "plain.bin"))
    assert plain.returncode == 1
    assert "Operation not supported" in plain.stderr
    posix = util("--posix", "-l", "1MiB", str(mnt / "posix.bin"))
    assert posix.returncode == 0, posix.stderr
    assert (mnt / "posix.bin").read_bytes() == bytes(MIB)
    (mnt / "holes.bin").write_bytes(b"h" * 8192)
    for flag in ("--keep-size", "--punch-hole", "--zero-range", "--collapse-range"):
        refused = util(flag, "-o", "0", "-l", "4096", str(mnt / "holes.bin"))
        assert refused.returncode == 1, flag
        # util-linux's words: "keep size mode is unsupported", "Operation not supported"
        assert re.search("unsupported|not supported", refused.stderr), (flag, refused.stderr)
    assert (mnt / "holes.bin").read_bytes() == b"h" * 8192
