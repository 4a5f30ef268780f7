"""Tree changes made through a real mount while the server is away (a relay
plays "unreachable"): mkdir, create, rename, an editor's save by rename,
unlink and utime answer at once from the local tree, wait in the tree log,
and reach the server in order when it is back; what the server refuses
meanwhile (a name someone else took, a folder someone deleted) is settled
without losing anything. SQLite backend."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest

from core import Drive
from tests.support.mounts import (
    LoggedServer,
    Relay,
    alive,
    drivegate,
    exists_on_server,
    mount_info,
    mounted,
    node_at,
    on_server,
    put,
    relay,
    wait_for,
)

SQLITE = pytest.mark.parametrize("backend", ["sqlite-file"], indirect=True)
pytestmark = SQLITE


@contextmanager
def relay_mount(server: LoggedServer, tmp_path: Path) -> Iterator[tuple[Relay, Path]]:
    """A mount through a relay that can play "unreachable"; uploads start at close."""
    with (
        relay(server.url) as link,
        mounted(link.url, tmp_path / "mnt", tmp_path / "cache", "--upload-delay", "0") as mnt,
    ):
        yield link, mnt


def conflicted(dav: httpx.Client, folder: str, stem: str) -> str:
    listing = dav.request("PROPFIND", folder, headers={"Depth": "1"}).text
    found = re.search(re.escape(stem) + r" \(conflicted copy [^<]+?\)(\.txt)?(?=<|/<)", listing)
    assert found is not None, listing
    return found.group(0)


def test_tree_changes_made_offline_reach_the_server_in_order_when_it_is_back(
    server: LoggedServer, dav: httpx.Client, server_api: httpx.Client, drive: Drive, tmp_path: Path
) -> None:
    put(dav, "/report.txt", b"report, version one")
    put(dav, "/old.txt", b"moved while offline")
    report_id = node_at(server_api, "report.txt")["id"]
    with relay_mount(server, tmp_path) as (link, mnt):
        wait_for((mnt / "old.txt").exists, what="old.txt")
        assert (mnt / "old.txt").read_bytes() == b"moved while offline"  # cached: read offline
        link.go_offline()
        (mnt / "new").mkdir()
        (mnt / "new" / "a.txt").write_bytes(b"made offline")
        (mnt / "new" / "sub").mkdir()
        (mnt / "new" / "sub" / "b.txt").write_bytes(b"deeper")
        os.rename(mnt / "old.txt", mnt / "new" / "old-moved.txt")
        temp = mnt / ".report.txt.tmp"  # an editor's save: temp file renamed over
        temp.write_bytes(b"report, version two")
        os.rename(temp, mnt / "report.txt")
        (mnt / "scratch.tmp").write_bytes(b"never meant to last")
        os.unlink(mnt / "scratch.tmp")
        os.utime(mnt / "new" / "sub", ns=(1_600_000_000_000_000_000,) * 2)
        inode = (mnt / "new" / "a.txt").stat().st_ino
        assert sorted(os.listdir(mnt)) == ["new", "report.txt"]
        assert sorted(os.listdir(mnt / "new")) == ["a.txt", "old-moved.txt", "sub"]
        assert (mnt / "report.txt").read_bytes() == b"report, version two"
        assert (mnt / "report.txt").stat().st_ino == report_id  # the original's inode
        assert (mnt / "new" / "old-moved.txt").read_bytes() == b"moved while offline"
        assert os.getxattr(mnt / "new", "user.drivegate.state") == b"uploading"
        status = drivegate("status", str(mnt)).stdout
        assert "uploads: nothing pending" not in status, status
        assert not exists_on_server(dav, "/new") and exists_on_server(dav, "/old.txt")

        link.online = True
        for path, data in [("/new/a.txt", b"made offline"), ("/new/sub/b.txt", b"deeper"),
                           ("/new/old-moved.txt", b"moved while offline"),
                           ("/report.txt", b"report, version two")]:  # fmt: skip
            wait_for(partial(on_server, dav, path, data), timeout=30, what=path)
        wait_for(lambda: mount_info(mnt)["uploads"]["pending"] == 0, what="nothing pending")
        assert not exists_on_server(dav, "/old.txt")
        assert node_at(server_api, "new/a.txt")["id"] == inode  # made with the id it had here
        assert node_at(server_api, "report.txt")["id"] == report_id
        versions = server_api.get(f"/nodes/{report_id}/versions").json()["versions"]
        assert [v["number"] for v in versions] == [1, 2]
        assert node_at(server_api, "new/sub")["mtime_ns"] == 1_600_000_000_000_000_000
        trashed = [entry.name for entry in drive.trash(drive.user("alice").id)]
        assert "scratch.tmp" not in trashed  # made and deleted here: the server never saw it
        assert ".report.txt.tmp" not in trashed


def test_a_name_taken_on_the_server_meanwhile_gives_ours_a_conflicted_name(
    server: LoggedServer, dav: httpx.Client, tmp_path: Path
) -> None:
    with relay_mount(server, tmp_path) as (link, mnt):
        link.go_offline()
        (mnt / "plan.txt").write_bytes(b"mine")
        (mnt / "folder").mkdir()
        (mnt / "folder" / "inside.txt").write_bytes(b"in my folder")
        put(dav, "/plan.txt", b"theirs")
        assert dav.request("MKCOL", "/folder").status_code == 201
        link.online = True
        wait_for(lambda: mount_info(mnt)["uploads"]["pending"] == 0, timeout=30,
                 what="nothing pending")  # fmt: skip
        assert dav.get("/plan.txt").content == b"theirs"
        copy = conflicted(dav, "/", "plan")
        assert dav.get("/" + copy).content == b"mine"
        folder = conflicted(dav, "/", "folder")
        assert dav.get(f"/{folder}/inside.txt").content == b"in my folder"
        wait_for(lambda: (mnt / copy).exists() and (mnt / "plan.txt").exists(),
                 what="both files in the mount")  # fmt: skip
        wait_for(lambda: (mnt / "plan.txt").read_bytes() == b"theirs", what="theirs")
        assert (mnt / copy).read_bytes() == b"mine"
        assert os.getxattr(mnt / copy, "user.drivegate.state") == b"conflict"
        assert (mnt / folder / "inside.txt").read_bytes() == b"in my folder"


def test_a_folder_removed_while_its_mkdir_is_on_its_way_stays_removed(
    server: LoggedServer, dav: httpx.Client, tmp_path: Path
) -> None:
    """rmdir of a new folder whose mkdir the server has done but not yet answered:
    the change feed, bringing the mkdir meanwhile, must not show the folder again."""
    with relay_mount(server, tmp_path) as (link, mnt):
        batch_answers = link.hold("/.drivegate/api/v1/batch")
        feed_answers = link.hold("/.drivegate/api/v1/changes")
        (mnt / "brief").mkdir()
        wait_for(partial(exists_on_server, dav, "/brief"), what="the mkdir on the server")
        os.rmdir(mnt / "brief")
        feed_answers.release()
        put(dav, "/after-mkdir.txt", b"later in the journal")
        wait_for((mnt / "after-mkdir.txt").exists, what="the feed past the mkdir")
        assert not (mnt / "brief").exists()
        batch_answers.release()
        wait_for(lambda: not exists_on_server(dav, "/brief"), what="the delete on the server")
        put(dav, "/after-delete.txt", b"later still")
        wait_for((mnt / "after-delete.txt").exists, what="the feed past the delete")
        assert sorted(os.listdir(mnt)) == ["after-delete.txt", "after-mkdir.txt"]


def test_a_file_renamed_over_a_new_file_whose_create_is_answered_meanwhile_keeps_its_content(
    server: LoggedServer, dav: httpx.Client, server_api: httpx.Client, tmp_path: Path
) -> None:
    """An online-only file renamed over a file just made here: while the rename
    fetches the source's manifest, the server answers the target's create. The
    target's new content must go up from the version that create made."""
    assert dav.request("MKCOL", "/box").status_code == 201
    put(dav, "/box/old.bin", b"old content")
    old_id = node_at(server_api, "box/old.bin")["id"]
    with relay_mount(server, tmp_path) as (link, mnt):
        wait_for((mnt / "box" / "old.bin").exists, what="box/old.bin")
        batch_answers = link.hold("/.drivegate/api/v1/batch")
        manifest = link.hold(f"/.drivegate/api/v1/nodes/{old_id}/manifest")
        (mnt / "box" / "new.bin").write_bytes(b"")
        with ThreadPoolExecutor(1) as pool:
            renamed = pool.submit(os.rename, mnt / "box" / "old.bin", mnt / "box" / "new.bin")
            assert manifest.arrived.wait(timeout=10), "the rename fetches the manifest"
            batch_answers.release()
            wait_for(lambda: mount_info(mnt)["uploads"]["tree_changes"] == 0,
                     what="the create answered")  # fmt: skip
            manifest.release()
            renamed.result(timeout=10)
        assert (mnt / "box" / "new.bin").read_bytes() == b"old content"
        result = drivegate("umount", str(mnt))
        assert result.returncode == 0, result.stderr
        assert "not uploaded" not in result.stderr
    assert dav.get("/box/new.bin").content == b"old content"
    assert not exists_on_server(dav, "/box/old.bin")


def test_a_new_file_in_a_folder_deleted_on_the_server_meanwhile_lands_in_the_root(
    server: LoggedServer, dav: httpx.Client, tmp_path: Path
) -> None:
    assert dav.request("MKCOL", "/box").status_code == 201
    put(dav, "/box/old.txt", b"old")
    with relay_mount(server, tmp_path) as (link, mnt):
        wait_for((mnt / "box" / "old.txt").exists, what="box/old.txt")
        link.go_offline()
        (mnt / "box" / "new.txt").write_bytes(b"written offline")
        assert dav.request("DELETE", "/box").status_code == 204
        link.online = True
        wait_for(lambda: on_server(dav, "/new.txt", b"written offline"), timeout=30,
                 what="the new file in the root")  # fmt: skip
        wait_for((mnt / "new.txt").exists, what="new.txt in the mount's root")
        assert not (mnt / "box").exists()


def test_tree_changes_waiting_survive_kill_9_and_go_at_the_next_mount(
    server: LoggedServer, dav: httpx.Client, tmp_path: Path
) -> None:
    mountpoint, cache = tmp_path / "mnt", tmp_path / "cache"
    put(dav, "/keep.txt", b"keep")
    with relay(server.url) as link:
        with mounted(link.url, mountpoint, cache, "--upload-delay", "0") as mnt:
            wait_for((mnt / "keep.txt").exists, what="keep.txt")
            link.go_offline()
            (mnt / "d").mkdir()
            (mnt / "d" / "e").mkdir()
            (mnt / "d" / "e" / "f.txt").write_bytes(b"deep and durable")
            os.rename(mnt / "keep.txt", mnt / "d" / "kept.txt")
            pid = json.loads(os.getxattr(mnt, "user.drivegate.mount"))["pid"]
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not alive(pid), what="the mount process to die")
        link.online = True
        with mounted(link.url, mountpoint, cache, "--upload-delay", "0") as mnt:
            assert (mnt / "d" / "e" / "f.txt").read_bytes() == b"deep and durable"
            wait_for(lambda: on_server(dav, "/d/e/f.txt", b"deep and durable"), timeout=30,
                     what="d/e/f.txt")  # fmt: skip
            wait_for(lambda: on_server(dav, "/d/kept.txt", b"keep"), what="d/kept.txt")
            assert not exists_on_server(dav, "/keep.txt")
