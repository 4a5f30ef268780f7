"""``drivegate status`` on a real mount over a real ``drivegate serve`` (SQLite
backend): the states a user sees while a written file waits for its upload
and while a pinned folder is still downloading (its chunk downloads held in a
relay, so the in-between state is there to be seen, not raced), sizes said
as ``drivegate user list`` says them, and what "available offline" promises."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import BackendSetup
from tests.support.mounts import LoggedServer, drivegate, mounted, put, relay, wait_for

SQLITE = pytest.mark.parametrize("backend", ["sqlite-file"], indirect=True)
pytestmark = SQLITE
MIB = 1024 * 1024


def rows(status: str) -> dict[str, tuple[str, str, str]]:
    """The table of ``drivegate status``: path → (state, local, size)."""
    found = {}
    for line in status.splitlines()[1:]:
        match = re.fullmatch(r"(.+?)\s{2,}(\d[\d.]* \w+)\s+(\d[\d.]* \w+)  (.+)", line)
        if match:
            found[match[4]] = (match[1].strip(), match[2], match[3])
    return found


def status(*paths: Path) -> str:
    result = drivegate("status", *map(str, paths))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("STATE "), result.stdout
    return result.stdout


def state(path: Path) -> str:
    return os.getxattr(path, "user.drivegate.state").decode()


def test_status_while_uploading_and_while_a_pinned_folder_downloads(
    backend: BackendSetup, server: LoggedServer, dav: httpx.Client, tmp_path: Path
) -> None:
    assert dav.request("MKCOL", "/album").status_code == 201
    blobs = {f"/album/{i}.bin": os.urandom(MIB) for i in range(3)}
    for path, data in blobs.items():
        put(dav, path, data)
    put(dav, "/album/empty.txt", b"")
    users = drivegate("user", "list", env=backend.env)
    assert users.returncode == 0, users.stderr
    assert re.search(r"^alice\s+no\s+3 MiB\s+-$", users.stdout, re.MULTILINE), users.stdout

    with relay(server.url) as link:
        mountpoint, cache = tmp_path / "mnt", tmp_path / "cache"
        with mounted(link.url, mountpoint, cache, "--upload-delay", "600") as mnt:
            album = mnt / "album"
            wait_for((album / "empty.txt").exists, what="the album")
            (mnt / "draft.bin").write_bytes(b"d" * 300 * 1024)
            before = status(album, mnt / "draft.bin")
            table = rows(before)
            assert table[str(mnt / "draft.bin")] == ("uploading", "300 KiB", "300 KiB"), before
            assert table[str(album)] == ("online-only", "0 bytes", "3 MiB"), before  # as user list
            assert "downloads: nothing pending; nothing is pinned" in before
            assert re.search(r"^uploads: \d+ pending$", before, re.MULTILINE), before

            held = link.hold("/.drivegate/api/v1/chunks/")
            assert drivegate("pin", str(album)).returncode == 0
            held.arrived.wait(30)
            during = status(album, album / "0.bin", album / "empty.txt")
            table = rows(during)
            assert table[str(album)] == ("pinned, 3 files still downloading", "0 bytes", "3 MiB")
            assert table[str(album / "0.bin")][0] == "pinned, still downloading"
            assert table[str(album / "empty.txt")][0] == "pinned, available offline"
            assert "downloads: 3 of 4 pinned files still downloading (3 MiB to go)" in during
            held.release()

            wait_for(lambda: state(album) == "pinned, available offline", timeout=30,
                     what="the album to be downloaded")  # fmt: skip
            after = status(album)
            assert rows(after)[str(album)] == ("pinned, available offline", "3 MiB", "3 MiB")
            assert "downloads: nothing pending; 4 pinned files, all available offline" in after
            link.go_offline()  # what "available offline" promises
            for path, data in blobs.items():
                assert (mnt / path.lstrip("/")).read_bytes() == data
            assert "mount: OFFLINE" in status(album)
