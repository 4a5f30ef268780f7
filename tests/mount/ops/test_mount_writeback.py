"""The write-back policy (``fusemount.writeback``) without FUSE: the real write
side (working copies, upload queue, uploader, tree log and its replay) over a
real ``drivegate serve``, driven by calling ``WriteBack`` directly: saves
queue uploads, the quota as last known, a file deleted while open for
writing, and an editor's save (a file renamed over another) made locally.
Uploads and tree changes are sent when the test says (``flush``, ``drain``),
so nothing here depends on timing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from core import Drive
from fusemount.apirecords import Node
from fusemount.cache import ChunkCache
from fusemount.client import HttpApi
from fusemount.connectivity import Connectivity
from fusemount.namespace import Namespace
from fusemount.reader import ChunkSource, FileReader
from fusemount.replica import Replica
from fusemount.sync import FeedFollower
from fusemount.treelog import TreeLog
from fusemount.treesync import TreeSync
from fusemount.uploader import Uploader
from fusemount.uploadqueue import UploadQueue
from fusemount.workcopy import WorkCopies
from fusemount.writeback import WriteBack
from tests.conftest import ALICE, BackendSetup
from tests.support import ROOT
from tests.support.mounts import LoggedServer, logged_server

SQLITE = pytest.mark.parametrize("backend", ["sqlite-file"], indirect=True)
MIB = 1024 * 1024
PACKAGE = ROOT / "fusemount"


@dataclass
class Side:
    """The write side, wired by hand as the composition root does (no DriveFs)."""

    replica: Replica
    feed: FeedFollower
    namespace: Namespace
    tree: TreeSync
    uploader: Uploader
    queue: UploadQueue
    writeback: WriteBack

    def root(self) -> Node:
        assert self.replica.root_id is not None
        root = self.replica.get(self.replica.root_id)
        assert root is not None
        return root

    async def send(self) -> None:
        """Tree changes, then uploads, to the server now."""
        await self.tree.flush()
        await self.uploader.drain()


Scenario = Callable[[Side, httpx.Client], Awaitable[None]]


@pytest.fixture
def server(backend: BackendSetup, drive: Drive, tmp_path: Path) -> Iterator[LoggedServer]:
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
                connectivity = Connectivity()
                source = ChunkSource(api, cache, connectivity)
                work = WorkCopies(cache.directory, FileReader(api, replica, source))
                uploader = Uploader(api, replica, work, queue, connectivity,
                                    busy=work.in_use, waiting=tree_log.unmade)  # fmt: skip
                tree = TreeSync(api, replica, tree_log, queue,
                                connectivity=connectivity, host="test")  # fmt: skip
                namespace = Namespace(api, replica, tree_log, tree)
                writeback = WriteBack(replica, namespace, work, queue, uploader, delay=0.0)
                feed = FeedFollower(api, replica, connectivity)
                await feed.start(await api.me())
                await tree.refill()
                async with trio.open_nursery() as nursery:
                    await nursery.start(source.run)
                    side = Side(replica, feed, namespace, tree, uploader, queue, writeback)
                    await scenario(side, dav)
                    nursery.cancel_scope.cancel()
                cache.close()
                replica.close()

    trio.run(main)


def test_the_write_back_policy_loads_no_fuse() -> None:
    # The package's __init__ exports DriveFs; the policy's own modules must not need it.
    code = f"""
import sys, types
sys.modules["pyfuse3"] = None  # any import of it fails
package = types.ModuleType("fusemount")
package.__path__ = [{str(PACKAGE)!r}]
sys.modules["fusemount"] = package
import fusemount.writeback
print(sorted(name for name in sys.modules if name.startswith("fusemount.")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "fusemount.writeback" in out.stdout and "fusemount.fs" not in out.stdout


@SQLITE
def test_a_save_queues_the_upload_and_the_uploader_sends_it(
    server: LoggedServer, tmp_path: Path
) -> None:
    async def scenario(side: Side, dav: httpx.Client) -> None:
        wb = side.writeback
        made, _ = await side.namespace.create(side.root(), "a.txt")
        _fd, dirty = await wb.open(made, truncate=True)
        assert not dirty  # a new file: truncating changed nothing
        assert wb.write(made.id, 0, b"hello") == 5
        assert not wb.queued(made.id)
        wb.save(made.id)
        row = side.queue.get(made.id)
        assert row is not None and (row.parent_id, row.name) == (side.root().id, "a.txt")
        wb.release(made.id, dirty=False)
        await side.send()
        assert not wb.queued(made.id)
        assert dav.get("/a.txt").content == b"hello"

    run(server, tmp_path, scenario)


@SQLITE
def test_growing_a_file_past_the_known_quota_is_refused(
    server: LoggedServer, drive: Drive, tmp_path: Path
) -> None:
    drive.set_quota("alice", 1 * MIB)

    async def scenario(side: Side, dav: httpx.Client) -> None:
        assert dav.put("/big.bin", content=b"x" * 1000).status_code == 201
        await side.feed.catch_up()
        node = side.replica.child(side.root().id, "big.bin")
        assert node is not None
        quota, used = side.replica.account()
        assert quota == MIB
        await side.writeback.open(node, truncate=False)
        assert side.writeback.within_quota(node.id, 1000)  # not growing
        assert side.writeback.within_quota(node.id, MIB - used + 1000)  # exactly full
        assert not side.writeback.within_quota(node.id, MIB - used + 1001)
        side.writeback.release(node.id, dirty=False)

    run(server, tmp_path, scenario)


@SQLITE
def test_a_file_deleted_while_open_for_writing_keeps_its_copy_until_closed(
    server: LoggedServer, tmp_path: Path
) -> None:
    async def scenario(side: Side, dav: httpx.Client) -> None:
        wb = side.writeback
        made, _ = await side.namespace.create(side.root(), "gone.txt")
        await wb.open(made, truncate=True)
        wb.write(made.id, 0, b"data")
        wb.save(made.id)
        assert wb.queued(made.id)
        side.namespace.remove(made)
        wb.forget(made.id)
        assert not wb.queued(made.id)
        assert wb.has_copy(made.id)  # the open handle still reads and writes it
        wb.save(made.id)
        assert not wb.queued(made.id)  # deleted: nothing to upload any more
        wb.release(made.id, dirty=True)
        assert not wb.has_copy(made.id)
        await side.send()
        assert dav.get("/gone.txt").status_code == 404

    run(server, tmp_path, scenario)


@SQLITE
def test_an_editors_save_replaces_the_target_locally(server: LoggedServer, tmp_path: Path) -> None:
    async def scenario(side: Side, dav: httpx.Client) -> None:
        wb = side.writeback
        assert dav.put("/doc.txt", content=b"first").status_code == 201
        await side.feed.catch_up()
        target = side.replica.child(side.root().id, "doc.txt")
        assert target is not None and target.version is not None
        temp, _ = await side.namespace.create(side.root(), "doc.txt~")
        await wb.open(temp, truncate=True)
        wb.write(temp.id, 0, b"second")
        wb.release(temp.id, dirty=True)
        await wb.prepare_rename_over(temp, target)
        assert wb.replaceable_here(temp, target)
        wb.replace_locally(temp, target)
        assert side.replica.get(temp.id) is None
        row = side.queue.get(target.id)
        assert row is not None and row.base_version_id == target.version.id
        assert not wb.queued(temp.id)
        await side.send()
        assert dav.get("/doc.txt").content == b"second"
        assert dav.get("/doc.txt~").status_code == 404

    run(server, tmp_path, scenario)
