"""The mount's pyfuse3 operations called in-process (no kernel mount) over a
real ``drivegate serve``: inode numbers, lookup counts and forget, ghosts of
deleted nodes, what the kernel is told to invalidate, reads, xattrs, statfs,
and EROFS for links and special files. Changes are pulled with ``catch_up``
at the points the test chooses, so nothing here depends on timing."""

from __future__ import annotations

import errno
import os
import random
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import cast

import httpx
import pyfuse3
import pytest
import trio

from core import Drive
from fusemount.cache import ChunkCache
from fusemount.client import HttpApi
from fusemount.control import Identity
from fusemount.fs import DriveFs
from fusemount.inodes import Notice
from fusemount.mount import Parts, assemble
from fusemount.replica import Effect, Replica
from fusemount.treelog import TreeLog
from fusemount.uploadqueue import UploadQueue
from tests.conftest import ALICE, BackendSetup
from tests.support.mounts import LoggedServer, logged_server

SQLITE = pytest.mark.parametrize("backend", ["sqlite-file"], indirect=True)
CTX = cast(pyfuse3.RequestContext, None)  # the operations never look at it
ROOT = pyfuse3.ROOT_INODE
MIB = 1024 * 1024

Scenario = Callable[[Parts, httpx.Client], Awaitable[None]]


@pytest.fixture
def server(backend: BackendSetup, drive: Drive, tmp_path: Path) -> Iterator[LoggedServer]:
    drive.add_user("bob", "bob-password")  # bob's root takes a node id before alice's
    drive.add_user("alice", "alice-password")
    with logged_server(backend.env, tmp_path) as running:
        yield running


def run(server: LoggedServer, tmp_path: Path, scenario: Scenario) -> None:
    async def main() -> None:
        with httpx.Client(base_url=server.url, auth=ALICE, timeout=60) as dav:
            async with HttpApi(server.url, *ALICE) as api:
                replica = Replica(tmp_path / "replica.sqlite")
                replica.bind(api.base_url, "alice")
                cache = ChunkCache(tmp_path / "cache", 64 * MIB)
                queue = UploadQueue(tmp_path / "uploads.sqlite")
                tree_log = TreeLog(tmp_path / "uploads.sqlite")
                identity = Identity(api.base_url, "alice", "-")
                parts = assemble(api, replica, cache, identity, queue, tree_log)
                await parts.feed.start(await api.me())
                async with trio.open_nursery() as nursery:
                    await nursery.start(parts.source.run)
                    await nursery.start(parts.pins.run)
                    await nursery.start(parts.tree.run)
                    await scenario(parts, dav)
                    nursery.cancel_scope.cancel()
                cache.close()
                replica.close()

    trio.run(main)


async def lookup(fs: DriveFs, parent: int, name: str) -> int:
    return int((await fs.lookup(parent, name.encode(), CTX)).st_ino)


async def fails(errno_: int, call: Awaitable[object]) -> None:
    with pytest.raises(pyfuse3.FUSEError) as caught:
        await call
    assert caught.value.errno == errno_


@SQLITE
def test_inodes_are_node_ids_and_lookups_are_counted(server: LoggedServer, tmp_path: Path) -> None:
    async def scenario(parts: Parts, dav: httpx.Client) -> None:
        fs = parts.fs
        assert dav.request("MKCOL", "/docs").status_code == 201
        assert dav.put("/docs/a.txt", content=b"abc").status_code == 201
        await parts.feed.catch_up()
        docs = await lookup(fs, ROOT, "docs")
        root_id = fs.replica.root_id
        assert root_id is not None and root_id != ROOT  # bob's root came first
        assert docs == fs.replica.child(root_id, "docs").id  # type: ignore[union-attr]
        assert (await fs.getattr(ROOT, CTX)).st_mode & 0o170000 == 0o040000
        a = await lookup(fs, docs, "a.txt")
        assert await lookup(fs, docs, "a.txt") == a
        assert fs.inodes.lookups[a] == 2
        assert await lookup(fs, docs, "..") == ROOT
        await fails(errno.ENOENT, fs.lookup(docs, b"missing", CTX))
        await fails(errno.ENOTDIR, fs.lookup(a, b"x", CTX))
        await fs.forget([(a, 2), (docs, 1)])
        assert a not in fs.inodes.lookups and docs not in fs.inodes.lookups

    run(server, tmp_path, scenario)


@SQLITE
def test_changes_tell_the_kernel_what_to_drop_and_keep_ghosts(server: LoggedServer,
                                                              tmp_path: Path) -> None:  # fmt: skip
    async def scenario(parts: Parts, dav: httpx.Client) -> None:
        fs = parts.fs
        assert dav.put("/old.txt", content=b"one").status_code == 201
        assert dav.put("/gone.txt", content=b"bye").status_code == 201
        await parts.feed.catch_up()
        old = await lookup(fs, ROOT, "old.txt")
        gone = await lookup(fs, ROOT, "gone.txt")
        handle = (await fs.open(gone, os.O_RDONLY, CTX)).fh

        sent: list[object] = []
        fs.inodes.notices = _recording(fs.inodes.notices, sent)  # type: ignore[method-assign,assignment]
        assert dav.put("/old.txt", content=b"two!").status_code == 204
        await parts.feed.catch_up()
        assert ("inode", old, False) in sent  # new version: attributes and page cache
        sent.clear()
        moved = dav.request("MOVE", "/old.txt", headers={"Destination": "/new.txt"})
        assert moved.status_code == 201
        await parts.feed.catch_up()
        assert ("entry", ROOT, b"old.txt") in sent
        assert ("entry", ROOT, b"new.txt") in sent
        assert await lookup(fs, ROOT, "new.txt") == old  # same node, same inode
        assert dav.request("DELETE", "/gone.txt").status_code == 204
        await parts.feed.catch_up()
        await fails(errno.ENOENT, fs.lookup(ROOT, b"gone.txt", CTX))
        assert (await fs.getattr(gone, CTX)).st_size == 3  # a ghost while the kernel knows it
        assert await fs.read(handle, 0, 10) == b"bye"  # an open handle still reads
        await fs.release(handle)
        await fs.forget([(gone, 1)])
        await fails(errno.ENOENT, fs.getattr(gone, CTX))

    run(server, tmp_path, scenario)


def _recording(
    notices: Callable[[list[Effect] | None], list[Notice]], sent: list[object]
) -> Callable[[list[Effect] | None], list[Notice]]:
    def record(effects: list[Effect] | None) -> list[Notice]:
        found = notices(effects)
        sent.extend(found)
        return found

    return record


@SQLITE
def test_reads_states_and_pins_through_xattrs(server: LoggedServer, tmp_path: Path) -> None:
    data = random.Random(1).randbytes(6 * MIB)

    async def scenario(parts: Parts, dav: httpx.Client) -> None:
        fs = parts.fs
        assert dav.put("/f.bin", content=data).status_code == 201
        await parts.feed.catch_up()
        ino = await lookup(fs, ROOT, "f.bin")

        async def xattr(name: str) -> bytes:
            return await fs.getxattr(ino, f"user.drivegate.{name}".encode(), CTX)

        assert await xattr("state") == b"online-only"
        fh = (await fs.open(ino, os.O_RDONLY, CTX)).fh
        assert await fs.read(fh, 5 * MIB, 100) == data[5 * MIB : 5 * MIB + 100]
        assert await xattr("state") == b"partial"
        assert await fs.read(fh, 0, 6 * MIB) == data
        assert await xattr("state") == b"cached"
        assert await xattr("cached") == str(6 * MIB).encode()
        await fs.release(fh)
        await fs.setxattr(ino, b"user.drivegate.pinned", b"1", CTX)
        assert await xattr("state") == b"pinned, available offline"  # all cached already
        assert await xattr("pinned_by") == b"/f.bin"
        await fails(errno.EINVAL, fs.setxattr(ino, b"user.drivegate.pinned", b"2", CTX))
        await fails(errno.EPERM, fs.setxattr(ino, b"user.drivegate.state", b"cached", CTX))
        await fails(errno.ENOTSUP, fs.setxattr(ino, b"user.other", b"x", CTX))
        await fails(pyfuse3.ENOATTR, fs.getxattr(ino, b"user.other", CTX))
        await fs.removexattr(ino, b"user.drivegate.pinned", CTX)
        assert await xattr("pinned") == b"0"
        assert b"user.drivegate.state" in await fs.listxattr(ino, CTX)

    run(server, tmp_path, scenario)


@SQLITE
def test_links_answer_erofs_and_statfs_answers_the_quota(
    server: LoggedServer, drive: Drive, tmp_path: Path
) -> None:
    drive.set_quota("alice", 10 * MIB)

    async def scenario(parts: Parts, dav: httpx.Client) -> None:
        fs = parts.fs
        assert dav.put("/f.txt", content=b"x" * 4096).status_code == 201
        await parts.feed.catch_up()
        ino = await lookup(fs, ROOT, "f.txt")
        await fails(errno.EROFS, fs.symlink(ROOT, b"link", b"f.txt", CTX))
        await fails(errno.EROFS, fs.link(ino, ROOT, b"hard", CTX))
        await fails(errno.EROFS, fs.mknod(ROOT, b"fifo", 0o10644, 0, CTX))
        await fails(errno.EISDIR, fs.open(ROOT, os.O_RDONLY, CTX))
        parts.feed._remember(await parts.feed.api.me())
        stats = await fs.statfs(CTX)
        assert stats.f_blocks * stats.f_frsize == 10 * MIB
        assert (stats.f_blocks - stats.f_bfree) * stats.f_frsize == 4096

    run(server, tmp_path, scenario)


@SQLITE
def test_a_folder_trashed_and_restored_comes_back_whole(
    server: LoggedServer, drive: Drive, tmp_path: Path
) -> None:
    async def scenario(parts: Parts, dav: httpx.Client) -> None:
        fs = parts.fs
        assert dav.request("MKCOL", "/album").status_code == 201
        assert dav.request("MKCOL", "/album/2024").status_code == 201
        assert dav.put("/album/2024/photo.jpg", content=b"jpeg").status_code == 201
        await parts.feed.catch_up()
        album = await lookup(fs, ROOT, "album")
        assert dav.request("DELETE", "/album").status_code == 204
        await parts.feed.catch_up()
        await fails(errno.ENOENT, fs.lookup(ROOT, b"album", CTX))
        assert fs.replica.count() == 1  # the subtree left with its folder
        alice = drive.user("alice")
        (entry,) = drive.trash(alice.id)
        drive.restore_trash(alice.id, entry.id)
        await parts.feed.catch_up()
        assert await lookup(fs, ROOT, "album") == album
        year = await lookup(fs, album, "2024")
        photo = await lookup(fs, year, "photo.jpg")
        fh = (await fs.open(photo, os.O_RDONLY, CTX)).fh
        assert await fs.read(fh, 0, 100) == b"jpeg"

    run(server, tmp_path, scenario)


@SQLITE
def test_a_pinned_folder_says_how_many_files_are_still_downloading(
    server: LoggedServer, tmp_path: Path
) -> None:
    """Hydration runs in the background: right after the pin (nothing awaited in
    between) the folder names the files whose bytes are on the server only; a file
    written here counts as local, with its real size, while it waits for its upload."""
    blobs = {f"/album/{i}.bin": random.Random(i).randbytes(MIB + i) for i in range(3)}

    async def scenario(parts: Parts, dav: httpx.Client) -> None:
        fs = parts.fs
        assert dav.request("MKCOL", "/album").status_code == 201
        for path, data in blobs.items():
            assert dav.put(path, content=data).status_code == 201
        assert dav.put("/album/empty.txt", content=b"").status_code == 201
        await parts.feed.catch_up()
        album = await lookup(fs, ROOT, "album")
        first = await lookup(fs, album, "0.bin")

        async def state(inode: int) -> bytes:
            return await fs.getxattr(inode, b"user.drivegate.state", CTX)

        fh = (await fs.open(first, os.O_RDONLY, CTX)).fh
        assert await fs.read(fh, 0, 2 * MIB) == blobs["/album/0.bin"]  # cached: not missing
        await fs.release(fh)
        folder = fs.replica.get(fs.inodes.node_id_of(album))
        assert folder is not None
        assert parts.pins.usage(folder).missing_files == 2  # the counting the state uses
        await fs.setxattr(album, b"user.drivegate.pinned", b"1", CTX)
        assert await state(album) == b"pinned, 2 files still downloading"
        assert await state(await lookup(fs, album, "1.bin")) == b"pinned, still downloading"
        assert await state(first) == b"pinned, available offline"
        info = parts.fs.control.describe()["hydration"]
        assert (info["files"], info["pending_files"]) == (4, 2)
        await parts.pins.hydrate()
        assert await state(album) == b"pinned, available offline"
        info = parts.fs.control.describe()["hydration"]
        assert (info["files"], info["pending_files"], info["pending_bytes"]) == (4, 0, 0)

        made, entry = await fs.create(album, b"draft.txt", 0o644, os.O_WRONLY, CTX)
        await fs.write(made.fh, 0, b"x" * 5000)
        await fs.flush(made.fh)
        await fs.release(made.fh)
        draft = entry.st_ino
        assert await state(draft) == b"uploading"  # not uploaded: no uploader runs here
        assert await fs.getxattr(draft, b"user.drivegate.size", CTX) == b"5000"
        assert await fs.getxattr(draft, b"user.drivegate.cached", CTX) == b"5000"
        assert await state(album) == b"pinned, available offline"  # its bytes are here
        total = str(sum(map(len, blobs.values())) + 5000).encode()
        assert await fs.getxattr(album, b"user.drivegate.size", CTX) == total

    run(server, tmp_path, scenario)
