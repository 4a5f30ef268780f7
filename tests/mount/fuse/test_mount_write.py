"""The write side of the mount through a real ``drivegate mount`` over a real
``drivegate serve`` (SQLite backend): tree changes (mkdir, rmdir, unlink,
rename, mtime), made locally and sent to the server in order in the
background (test_mount_tree_log has them offline); content writes into
working copies, uploaded after close from a durable queue that survives kill -9."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import re
import signal
import stat
import subprocess
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from core import Drive
from tests.support.davbodies import exclusive_lock
from tests.support.mounts import (
    LoggedServer,
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

MiB = 1024 * 1024
API = "/.drivegate/api/v1"
DEPTH_0 = {"Depth": "0"}
SQLITE = pytest.mark.parametrize("backend", ["sqlite-file"], indirect=True)
pytestmark = SQLITE


@pytest.fixture
def mnt(server: LoggedServer, tmp_path: Path) -> Iterator[Path]:
    with mounted(server.url, tmp_path / "mnt", tmp_path / "cache", "--upload-delay", "0") as path:
        yield path


def version_numbers(api: httpx.Client, name: str) -> list[int]:
    node = node_at(api, name)
    return [v["number"] for v in api.get(f"/nodes/{node['id']}/versions").json()["versions"]]


def fails(code: int, call: Any, *args: Any) -> None:
    with pytest.raises(OSError) as raised:
        call(*args)
    assert raised.value.errno == code, raised.value


def test_mkdir_rename_utime_rmdir_and_unlink_reach_the_server(dav: httpx.Client, mnt: Path) -> None:
    put(dav, "/a.txt", b"alpha")
    wait_for((mnt / "a.txt").exists, what="a.txt")
    (mnt / "docs").mkdir()
    wait_for(partial(exists_on_server, dav, "/docs"), what="docs on the server")
    (mnt / "docs" / "deep").mkdir()
    os.rename(mnt / "a.txt", mnt / "docs" / "b.txt")
    wait_for(partial(on_server, dav, "/docs/b.txt", b"alpha"), what="the rename")
    assert not exists_on_server(dav, "/a.txt")
    assert (mnt / "docs" / "b.txt").read_bytes() == b"alpha"
    assert sorted(os.listdir(mnt / "docs")) == ["b.txt", "deep"]
    os.utime(mnt / "docs" / "b.txt", ns=(1_600_000_000_000_000_000, 1_600_000_000_123_456_789))
    assert (mnt / "docs" / "b.txt").stat().st_mtime_ns == 1_600_000_000_123_456_789
    wait_for(lambda: dav.head("/docs/b.txt").headers["Last-Modified"]
             == "Sun, 13 Sep 2020 12:26:40 GMT", what="the mtime on the server")  # fmt: skip
    os.chmod(mnt / "docs" / "b.txt", 0o600)  # the server keeps no mode: accepted, no change
    os.rename(mnt / "docs", mnt / "papers")
    wait_for(partial(on_server, dav, "/papers/b.txt", b"alpha"), what="the folder's rename")
    assert not exists_on_server(dav, "/docs")
    os.rmdir(mnt / "papers" / "deep")
    os.unlink(mnt / "papers" / "b.txt")
    os.rmdir(mnt / "papers")
    wait_for(lambda: not exists_on_server(dav, "/papers"), what="the folder's removal")
    assert os.listdir(mnt) == []


def test_posix_errors_change_nothing(dav: httpx.Client, mnt: Path) -> None:
    put(dav, "/f.txt", b"file")
    assert dav.request("MKCOL", "/d").status_code == 201
    put(dav, "/d/inner.txt", b"inner")
    wait_for((mnt / "d" / "inner.txt").exists, what="d/inner.txt")
    fails(errno.ENOTEMPTY, os.rmdir, mnt / "d")
    fails(errno.ENOTDIR, os.rmdir, mnt / "f.txt")
    fails(errno.EISDIR, os.unlink, mnt / "d")
    fails(errno.EEXIST, os.mkdir, mnt / "d")
    fails(errno.ENAMETOOLONG, os.mkdir, mnt / ("x" * 256))
    fails(errno.ENOENT, os.unlink, mnt / "nothing")
    fails(errno.EINVAL, os.rename, mnt / "d", mnt / "d" / "into-itself")
    fails(errno.EISDIR, os.rename, mnt / "f.txt", mnt / "d")
    fails(errno.ENOTDIR, os.rename, mnt / "d", mnt / "f.txt")
    (mnt / "empty").mkdir()
    fails(errno.ENOTEMPTY, os.rename, mnt / "empty", mnt / "d")
    assert dav.get("/f.txt").content == b"file" and dav.get("/d/inner.txt").content == b"inner"
    assert sorted(os.listdir(mnt)) == ["d", "empty", "f.txt"]
    os.rename(mnt / "empty", mnt / "d2")
    wait_for(partial(exists_on_server, dav, "/d2"), what="the rename on the server")
    assert not exists_on_server(dav, "/empty")


def test_an_online_only_file_renamed_over_another_moves_no_bytes_and_works_offline(
    server: LoggedServer, dav: httpx.Client, server_api: httpx.Client, tmp_path: Path
) -> None:
    first, second = random.Random(1).randbytes(3 * MiB), random.Random(2).randbytes(3 * MiB)
    put(dav, "/first.bin", first)
    put(dav, "/second.bin", second)
    put(dav, "/target.bin", b"the target's first version")
    with relay(server.url) as link:
        mountpoint, cache = tmp_path / "mnt", tmp_path / "cache"
        with mounted(link.url, mountpoint, cache, "--upload-delay", "0") as mnt:
            wait_for((mnt / "second.bin").exists, what="the files")
            before = len(server.requests())
            os.rename(mnt / "first.bin", mnt / "target.bin")
            assert (mnt / "target.bin").stat().st_size == len(first)
            wait_for(lambda: version_numbers(server_api, "target.bin") == [1, 2], what="v2")
            assert dav.get("/target.bin").content == first
            wait_for(lambda: not exists_on_server(dav, "/first.bin"), what="the source to go")
            moved = [r for r in server.requests()[before:] if "/chunks/" in r.path]
            assert not [r for r in moved if r.method in ("GET", "PUT")], "content travelled"
            # Offline, with the source's manifest known (its first byte was read).
            with open(mnt / "second.bin", "rb") as second_file:
                assert second_file.read(1) == second[:1]
            link.go_offline()
            os.rename(mnt / "second.bin", mnt / "target.bin")
            assert sorted(os.listdir(mnt)) == ["target.bin"]
            assert (mnt / "target.bin").stat().st_size == len(second)
            assert dav.get("/target.bin").content == first
            link.online = True
            wait_for(lambda: version_numbers(server_api, "target.bin") == [1, 2, 3], what="v3")
            assert dav.get("/target.bin").content == second
            wait_for(lambda: not exists_on_server(dav, "/second.bin"), what="the source to go")


def test_a_file_renamed_over_a_file_becomes_its_new_version(
    dav: httpx.Client, server_api: httpx.Client, mnt: Path
) -> None:
    put(dav, "/report.odt", b"version one")
    put(dav, "/report.odt", b"version two")
    put(dav, "/.~report.tmp", b"version three, saved by rename")
    wait_for((mnt / ".~report.tmp").exists, what="the temp file")
    before = node_at(server_api, "report.odt")
    assert (mnt / "report.odt").read_bytes() == b"version two"  # in the page cache now
    os.rename(mnt / ".~report.tmp", mnt / "report.odt")
    assert sorted(os.listdir(mnt)) == ["report.odt"]
    wait_for(lambda: version_numbers(server_api, "report.odt") == [1, 2, 3], what="version 3")
    after = node_at(server_api, "report.odt")
    assert after["id"] == before["id"]
    assert dav.get("/report.odt").content == b"version three, saved by rename"
    wait_for(lambda: not exists_on_server(dav, "/.~report.tmp"), what="the temp file to go")
    assert (mnt / "report.odt").read_bytes() == b"version three, saved by rename"
    wait_for(lambda: (mnt / "report.odt").stat().st_ino == after["id"], what="the target's inode")


def test_an_unlinked_file_reads_on_until_closed(dav: httpx.Client, mnt: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    put(dav, "/gone.bin", data)
    wait_for((mnt / "gone.bin").exists, what="gone.bin")
    with open(mnt / "gone.bin", "rb") as handle:
        assert handle.read(1000) == data[:1000]
        os.unlink(mnt / "gone.bin")
        assert not (mnt / "gone.bin").exists()
        wait_for(lambda: not exists_on_server(dav, "/gone.bin"), what="the delete on the server")
        assert handle.read() == data[1000:]


def test_a_webdav_lock_makes_a_file_read_only_until_it_goes(dav: httpx.Client, mnt: Path) -> None:
    put(dav, "/locked.txt", b"locked")
    answer = dav.request("LOCK", "/locked.txt", content=exclusive_lock("office"))
    assert answer.status_code == 200, answer.text
    token = answer.headers["Lock-Token"]
    target = mnt / "locked.txt"
    wait_for(lambda: stat.S_IMODE(target.stat().st_mode) == 0o444, what="a read-only file")
    fails(errno.EACCES, os.unlink, target)
    fails(errno.EACCES, open, target, "r+b")
    fails(errno.EACCES, os.rename, target, mnt / "moved.txt")
    fails(errno.EACCES, os.utime, target, None)
    assert dav.get("/locked.txt").content == b"locked"
    assert dav.request("UNLOCK", "/locked.txt", headers={"Lock-Token": token}).status_code == 204
    wait_for(lambda: stat.S_IMODE(target.stat().st_mode) == 0o644, what="a writable file")
    os.rename(target, mnt / "moved.txt")
    wait_for(partial(on_server, dav, "/moved.txt", b"locked"), what="the rename on the server")


def test_a_new_file_is_uploaded_after_close_as_one_version(
    dav: httpx.Client, server_api: httpx.Client, mnt: Path
) -> None:
    data = os.urandom(5 * 1024 * 1024 + 123)
    with open(mnt / "new.bin", "wb") as file:
        file.write(data[:1000])
        file.write(data[1000:])
        assert (mnt / "new.bin").stat().st_size == len(data)  # the working copy's size
    assert (mnt / "new.bin").read_bytes() == data
    wait_for(lambda: on_server(dav, "/new.bin", data), what="the upload")
    assert version_numbers(server_api, "new.bin") == [1]  # the empty create left no version behind
    assert (mnt / "new.bin").read_bytes() == data
    (mnt / "empty.txt").touch()
    wait_for(partial(on_server, dav, "/empty.txt", b""), what="the empty file")


def test_edits_in_place_append_and_truncate_each_make_a_version(
    dav: httpx.Client, server_api: httpx.Client, mnt: Path
) -> None:
    put(dav, "/doc.txt", b"0123456789" * 100)
    wait_for((mnt / "doc.txt").exists, what="doc.txt")
    with open(mnt / "doc.txt", "r+b") as file:
        file.seek(500)
        file.write(b"EDIT")
    expected = b"0123456789" * 50 + b"EDIT" + (b"0123456789" * 50)[4:]
    assert (mnt / "doc.txt").read_bytes() == expected
    wait_for(lambda: on_server(dav, "/doc.txt", expected), what="the edit")
    with open(mnt / "doc.txt", "ab") as file:
        file.write(b"+tail")
    expected += b"+tail"
    wait_for(lambda: on_server(dav, "/doc.txt", expected), what="the append")
    os.truncate(mnt / "doc.txt", 10)
    wait_for(lambda: on_server(dav, "/doc.txt", expected[:10]), what="the truncation")
    with open(mnt / "doc.txt", "wb") as file:  # O_TRUNC
        file.write(b"rewritten")
    wait_for(lambda: on_server(dav, "/doc.txt", b"rewritten"), what="the rewrite")
    wait_for(
        lambda: version_numbers(server_api, "doc.txt") == [1, 2, 3, 4, 5], what="five versions"
    )
    assert (mnt / "doc.txt").read_bytes() == b"rewritten"


BIG, MIDDLE = 64 * MiB, 32 * MiB + 12345


def edit_online_only(
    dav: httpx.Client, server_api: httpx.Client, mnt: Path, seed: int, edit: bytes
) -> tuple[bytes, dict[str, Any]]:
    """Make /big.bin on the server (online-only in the mount), write ``edit`` at its
    middle through the mount and wait for the new version; return the new content
    and version 1's manifest."""
    data = bytearray(random.Random(seed).randbytes(BIG))
    put(dav, "/big.bin", bytes(data))
    wait_for((mnt / "big.bin").exists, what="big.bin in the mount")
    manifest = server_api.get(f"/nodes/{node_at(server_api, 'big.bin')['id']}/manifest").json()
    with open(mnt / "big.bin", "r+b") as file:  # online-only: nothing of it is cached
        file.seek(MIDDLE)
        file.write(edit)
    data[MIDDLE : MIDDLE + len(edit)] = edit
    wait_for(lambda: version_numbers(server_api, "big.bin") == [1, 2], what="the edit's upload")
    assert hashlib.sha256(dav.get("/big.bin").content).digest() == hashlib.sha256(data).digest()
    return bytes(data), manifest


def test_a_one_byte_edit_of_a_large_online_only_file_moves_a_few_bytes_each_way(
    server: LoggedServer, dav: httpx.Client, server_api: httpx.Client, mnt: Path
) -> None:
    before = len(server.requests())
    data, manifest = edit_online_only(dav, server_api, mnt, 5, b"!")
    sent = server.requests()[before:]
    # The byte goes as a patch, and the server re-cuts the chunk it lands in: no chunk
    # travels either way.
    assert [r for r in sent if r.path.startswith("/.drivegate/api/v1/chunks")] == []
    (patch,) = [r for r in sent if r.path == f"{API}/nodes/{manifest['node_id']}/patch"]
    assert (patch.status, patch.received) == (200, 1)
    with open(mnt / "big.bin", "rb") as file:  # the mount shows the new version too
        assert os.pread(file.fileno(), 3, MIDDLE - 1) == data[MIDDLE - 1 : MIDDLE + 2]


def test_a_larger_edit_of_an_online_only_file_moves_only_the_chunks_around_it(
    server: LoggedServer, dav: httpx.Client, server_api: httpx.Client, mnt: Path
) -> None:
    edit = random.Random(7).randbytes(5 * MiB)  # more than a patch carries: chunks go
    before = len(server.requests())
    _, manifest = edit_online_only(dav, server_api, mnt, 6, edit)
    start, end = MIDDLE, MIDDLE + len(edit)
    (first,) = [c for c in manifest["chunks"] if c["offset"] <= start < c["offset"] + c["length"]]
    (last,) = [c for c in manifest["chunks"] if c["offset"] <= end < c["offset"] + c["length"]]
    moved = [r for r in server.requests()[before:] if r.path.startswith(f"{API}/chunks")]
    # Only chunks around the edit come down: the one it begins in (its bytes before
    # the edit), and from the one it ends in, as many as the cut takes to meet the
    # origin's boundaries again (usually one or two).
    offsets = {c["hash"]: c["offset"] for c in manifest["chunks"]}
    got = sorted(offsets[r.path.rsplit("/", 1)[1]] for r in moved if r.method == "GET")
    assert got[0] == first["offset"] and len(got) <= 4, got
    assert all(offset >= last["offset"] for offset in got[1:]), got
    up = sum(r.received for r in moved if r.method == "PUT")
    assert len(edit) <= up <= len(edit) + 8 * MiB, f"{up} bytes uploaded for a 5 MiB edit"
    # The commit is a splice of the base version: it names the new chunks, not all ~50.
    (commit,) = [r for r in server.requests()[before:] if r.path == "/.drivegate/api/v1/commit"]
    assert commit.received < 2000, f"a {commit.received}-byte commit for a 5 MiB edit"


def test_a_big_new_file_is_sent_batch_by_batch_as_it_is_cut_and_each_chunk_once(
    server: LoggedServer, dav: httpx.Client, mnt: Path
) -> None:
    block = random.Random(9).randbytes(48 * MiB)  # ~38 chunks: past the first batch of 32
    data = block + block  # the second half repeats the first half's chunks
    before = len(server.requests())
    (mnt / "twice.bin").write_bytes(data)
    wait_for(partial(on_server, dav, "/twice.bin", data), what="twice.bin uploaded")
    sent = server.requests()[before:]
    puts = [r.path for r in sent if r.method == "PUT" and r.path.startswith(f"{API}/chunks/")]
    asked = [r for r in sent if r.path == "/.drivegate/api/v1/chunks/missing"]
    assert len(puts) == len(set(puts)), "a chunk was sent twice"
    assert len(puts) < 45  # the repeated half costs nothing: ~38 distinct chunks
    assert len(asked) >= 2  # one `missing` per batch of 32 pieces, asked as the cut went on


def test_an_online_only_file_renamed_over_another_keeps_its_content(
    dav: httpx.Client, server_api: httpx.Client, mnt: Path
) -> None:
    content = random.Random(12).randbytes(6 * MiB)
    put(dav, "/old.txt", b"the file that is replaced")
    put(dav, "/new.bin", content)
    wait_for(lambda: (mnt / "new.bin").exists() and (mnt / "old.txt").exists(), what="both")
    with open(mnt / "new.bin", "r+b") as file:  # an edit: the copy holds one byte itself
        file.seek(MiB)
        file.write(b"#")
    edited = content[:MiB] + b"#" + content[MiB + 1 :]
    os.rename(mnt / "new.bin", mnt / "old.txt")  # the source node goes away
    assert hashlib.sha256((mnt / "old.txt").read_bytes()).digest() == sha256(edited)
    wait_for(partial(on_server, dav, "/old.txt", edited), what="the replacement uploaded")
    assert version_numbers(server_api, "old.txt")[-1] >= 2
    assert hashlib.sha256((mnt / "old.txt").read_bytes()).digest() == sha256(edited)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_an_editors_save_by_temp_file_and_rename_keeps_one_node_and_its_history(
    dav: httpx.Client, server_api: httpx.Client, mnt: Path
) -> None:
    put(dav, "/notes.md", b"# draft one\n")
    wait_for((mnt / "notes.md").exists, what="notes.md")
    node_id = node_at(server_api, "notes.md")["id"]
    for number, text in enumerate([b"# draft two\n", b"# draft three, longer\n"], start=2):
        temp = mnt / ".notes.md.swp"
        with open(temp, "wb") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.rename(temp, mnt / "notes.md")  # the original takes the temp file's content
        assert (mnt / "notes.md").stat().st_ino == node_id
        wait_for(partial(on_server, dav, "/notes.md", text), what="the saved version")
        assert node_at(server_api, "notes.md")["id"] == node_id
        assert version_numbers(server_api, "notes.md") == list(range(1, number + 1))
        assert (mnt / "notes.md").read_bytes() == text
    assert sorted(os.listdir(mnt)) == ["notes.md"]


def test_closed_files_survive_kill_9_and_upload_at_the_next_mount(
    server: LoggedServer, dav: httpx.Client, tmp_path: Path
) -> None:
    mountpoint, cache = tmp_path / "mnt", tmp_path / "cache"
    data = {f"f{i}.bin": os.urandom(300_000 * (i + 1)) for i in range(3)}
    edited = bytearray(os.urandom(6 * MiB))
    put(dav, "/edited.bin", bytes(edited))
    # A day's delay: nothing can have been uploaded when the mount is killed.
    with mounted(server.url, mountpoint, cache, "--upload-delay", "86400") as mnt:
        for name, content in data.items():
            (mnt / name).write_bytes(content)
        with open(mnt / "edited.bin", "r+b") as file:  # online-only: a sparse working copy
            file.seek(3 * MiB)
            file.write(b"EDIT")
        edited[3 * MiB : 3 * MiB + 4] = b"EDIT"
        pid = json.loads(os.getxattr(mnt, "user.drivegate.mount"))["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid), what="the mount process to die")
    for name, content in data.items():
        assert dav.get(f"/{name}").content != content  # not uploaded: at most made, empty
    with mounted(server.url, mountpoint, cache, "--upload-delay", "0") as mnt:
        data["edited.bin"] = bytes(edited)
        for name, content in data.items():
            wait_for(partial(on_server, dav, f"/{name}", content), what=f"{name} uploaded")
            assert (mnt / name).read_bytes() == content


def test_a_concurrent_edit_makes_a_conflicted_copy_and_keeps_both(
    dav: httpx.Client, server_api: httpx.Client, mnt: Path
) -> None:
    put(dav, "/shared.txt", b"original")
    target = mnt / "shared.txt"
    wait_for(target.exists, what="shared.txt")
    with open(target, "r+b") as file:
        file.write(b"MOUNT")
        put(dav, "/shared.txt", b"changed over WebDAV meanwhile")

    def conflicted_copy() -> Path | None:
        return next((p for p in mnt.iterdir() if "conflicted copy" in p.name), None)

    copy = wait_for(conflicted_copy, what="the conflicted copy")
    assert re.fullmatch(r"shared \(conflicted copy \S+ \d{4}-\d\d-\d\d \d{6}\)\.txt", copy.name)
    assert copy.read_bytes() == b"MOUNTnal"
    assert dav.get("/" + quote(copy.name)).content == b"MOUNTnal"
    assert dav.get("/shared.txt").content == b"changed over WebDAV meanwhile"
    assert target.read_bytes() == b"changed over WebDAV meanwhile"
    assert version_numbers(server_api, "shared.txt") == [1, 2]
    assert os.getxattr(copy, "user.drivegate.state") == b"conflict"
    assert os.getxattr(target, "user.drivegate.state") != b"conflict"
    status = drivegate("status", str(target))
    assert status.returncode == 0, status.stderr
    assert "uploads: nothing pending" in status.stdout
    assert f"conflict: /{copy.name} holds your edit of /shared.txt" in status.stdout


def test_an_edit_of_a_file_deleted_on_the_server_meanwhile_makes_it_again(
    server: LoggedServer, dav: httpx.Client, tmp_path: Path
) -> None:
    put(dav, "/gone.txt", b"first")
    assert dav.request("MKCOL", "/dir/").status_code == 201
    put(dav, "/dir/taken.txt", b"other")
    mountpoint, cache = tmp_path / "mnt", tmp_path / "cache"
    with mounted(server.url, mountpoint, cache, "--upload-delay", "86400") as mnt:
        wait_for((mnt / "dir" / "taken.txt").exists, what="the files in the mount")
        with open(mnt / "gone.txt", "r+b") as file:  # online-only: the edit keeps "t" remote
            file.write(b"EDIT")
        (mnt / "dir" / "taken.txt").write_bytes(b"mine")
        assert dav.delete("/gone.txt").status_code == 204
        assert dav.delete("/dir/taken.txt").status_code == 204
        put(dav, "/dir/taken.txt", b"a new file took the name")
        wait_for(lambda: not (mnt / "gone.txt").exists(), what="the delete in the mount")
        result = drivegate("umount", str(mnt))  # uploads what is pending
        assert result.returncode == 0, result.stderr
    assert dav.get("/gone.txt").content == b"EDITt"  # made again, under its name
    assert dav.get("/dir/taken.txt").content == b"a new file took the name"
    listing = dav.request("PROPFIND", "/dir/", headers={"Depth": "1"}).text
    copy = re.search(r"taken \(conflicted copy [^<]+\)\.txt", listing)
    assert copy is not None, listing
    assert dav.get("/dir/" + quote(copy.group(0))).content == b"mine"


def test_names_the_server_cannot_keep_are_refused_and_nothing_is_made(
    dav: httpx.Client, mnt: Path
) -> None:
    bad = bytes(mnt) + b"/bad\xffname"
    fails(errno.EINVAL, os.mkdir, bad)
    fails(errno.EINVAL, open, bad, "wb")
    fails(errno.ENAMETOOLONG, open, mnt / ("n" * 256), "wb")
    # The names the server keeps at the top (it lists them in GET me; no copy here).
    fails(errno.EINVAL, os.mkdir, mnt / "api")
    fails(errno.EINVAL, os.mkdir, mnt / ".drivegate")
    fails(errno.EINVAL, open, mnt / "healthz", "wb")
    fails(errno.EINVAL, open, mnt / ".trash", "wb")
    (mnt / "ok.txt").write_bytes(b"ok")
    fails(errno.EINVAL, os.rename, mnt / "ok.txt", bad)
    fails(errno.EINVAL, os.rename, mnt / "ok.txt", mnt / ".versions")
    assert os.listdir(mnt) == ["ok.txt"]
    (mnt / "ok-dir").mkdir()
    (mnt / "ok-dir" / ".drivegate").mkdir()  # below the top, an ordinary name
    listing = dav.request("PROPFIND", "/", headers={"Depth": "1"}).text
    assert "bad" not in listing and "nnnn" not in listing
    wait_for(lambda: on_server(dav, "/ok.txt", b"ok"), what="ok.txt")
    inner = "/ok-dir/.drivegate"
    wait_for(lambda: dav.request("PROPFIND", inner, headers=DEPTH_0).status_code == 207, what=inner)


def test_the_quota_answers_edquot_when_known_else_the_data_stays_local(
    server: LoggedServer, drive: Drive, dav: httpx.Client, tmp_path: Path
) -> None:
    drive.set_quota("alice", 1024 * 1024)
    with mounted(server.url, tmp_path / "mnt", tmp_path / "cache", "--upload-delay", "0") as mnt:
        # Each fits the quota as the mount knows it; together they do not.
        data = {"a.bin": os.urandom(700_000), "b.bin": os.urandom(700_000)}
        with open(mnt / "a.bin", "wb", buffering=0) as a, open(mnt / "b.bin", "wb") as b:
            a.write(data["a.bin"])
            b.write(data["b.bin"])

        def refused() -> list[str]:
            states = {name: os.getxattr(mnt / name, "user.drivegate.state") for name in data}
            return [name for name, state in states.items() if state == b"quota exceeded"]

        (stuck,) = wait_for(refused, what="an upload refused for the quota")
        (landed,) = set(data) - {stuck}
        wait_for(lambda: on_server(dav, f"/{landed}", data[landed]), what="the other upload")
        assert (mnt / stuck).read_bytes() == data[stuck]  # kept locally
        status = drivegate("status", str(mnt / stuck))
        assert f"upload stopped: /{stuck}: quota exceeded" in status.stdout
        # More than the whole quota: known in advance, refused at write.
        written, block = 0, os.urandom(256 * 1024)
        with open(mnt / "big.bin", "wb", buffering=0) as big, pytest.raises(OSError) as raised:
            for _ in range(8):
                written += big.write(block)
        assert raised.value.errno == errno.EDQUOT and written <= 1024 * 1024


def test_new_files_made_offline_reach_the_server_with_their_content_in_one_commit(
    drive: Drive, server: LoggedServer, dav: httpx.Client, server_api: httpx.Client,
    tmp_path: Path,
) -> None:  # fmt: skip
    drive.set_quota("alice", 3 * MiB)
    small = {f"f{i}.txt": f"file {i}\n".encode() * 1000 for i in range(20)}
    big = random.Random(4).randbytes(2 * MiB)
    with relay(server.url) as link:
        mountpoint, cache = tmp_path / "mnt", tmp_path / "cache"
        with mounted(link.url, mountpoint, cache, "--upload-delay", "0") as mnt:
            link.go_offline()
            (mnt / "d").mkdir()
            for name, data in small.items():
                (mnt / "d" / name).write_bytes(data)
            (mnt / "big.bin").write_bytes(big)
            put(dav, "/elsewhere.bin", big)  # meanwhile: big.bin no longer fits the quota
            before = len(server.requests())
            link.online = True
            wait_for(lambda: all(exists_on_server(dav, f"/d/{n}") for n in small), what="files")
            wait_for(lambda: exists_on_server(dav, "/big.bin"), what="big.bin, empty")
            status = partial(drivegate, "status", str(mnt / "big.bin"))
            wait_for(lambda: "quota exceeded" in status().stdout, what="the quota in status")
            for name, data in small.items():
                assert dav.get(f"/d/{name}").content == data
                assert version_numbers(server_api, f"d/{name}") == [1]
            assert dav.get("/big.bin").content == b""  # made empty: its content stays here
            assert (mnt / "big.bin").read_bytes() == big
            sent = server.requests()[before:]
            commits = [r.status for r in sent if r.path == "/.drivegate/api/v1/commit"]
            assert set(commits) == {507}, "a create went without its content"  # big.bin's
            assert len([r for r in sent if r.path == "/.drivegate/api/v1/chunks/missing"]) <= 2


def test_writes_while_the_server_is_away_upload_when_it_is_back(
    server: LoggedServer, dav: httpx.Client, tmp_path: Path
) -> None:
    put(dav, "/log.txt", b"before")
    with relay(server.url) as link:
        mountpoint, cache = tmp_path / "mnt", tmp_path / "cache"
        with mounted(link.url, mountpoint, cache, "--upload-delay", "0") as mnt:
            wait_for((mnt / "log.txt").exists, what="log.txt")
            assert (mnt / "log.txt").read_bytes() == b"before"  # cached now
            data = os.urandom(1_500_000)
            with open(mnt / "new.bin", "wb") as new:  # created while online
                new.write(data[:1000])
                link.go_offline()
                new.write(data[1000:])
            with open(mnt / "log.txt", "ab") as log:  # opened offline, from the cache
                log.write(b" and after")
            assert (mnt / "new.bin").read_bytes() == data
            assert (mnt / "log.txt").read_bytes() == b"before and after"
            # Two contents, and new.bin's creation if it had not reached the server yet.
            status = drivegate("status", str(mnt)).stdout
            assert re.search(r"^uploads: [23] pending$", status, re.MULTILINE), status
            assert dav.get("/log.txt").content == b"before"
            link.online = True
            wait_for(lambda: on_server(dav, "/new.bin", data), timeout=60, what="new.bin")
            wait_for(lambda: on_server(dav, "/log.txt", b"before and after"), timeout=60,
                     what="log.txt")  # fmt: skip
            wait_for(lambda: mount_info(mnt)["uploads"]["pending"] == 0, what="an empty queue")


def test_an_online_only_file_edited_offline_goes_up_as_a_patch_when_the_server_is_back(
    server: LoggedServer, dav: httpx.Client, tmp_path: Path
) -> None:
    """Opening a file for writing fetches nothing, not even its manifest: an
    online-only file never read here can be edited offline too."""
    content = bytearray(random.Random(21).randbytes(3 * MiB))
    put(dav, "/far.bin", bytes(content))
    with relay(server.url) as link:
        mountpoint, cache = tmp_path / "mnt", tmp_path / "cache"
        with mounted(link.url, mountpoint, cache, "--upload-delay", "0") as mnt:
            wait_for((mnt / "far.bin").exists, what="far.bin")
            link.go_offline()
            with open(mnt / "far.bin", "r+b") as file:
                file.seek(2 * MiB)
                file.write(b"written offline")
            content[2 * MiB : 2 * MiB + 15] = b"written offline"
            assert dav.get("/far.bin").content != bytes(content)
            served = len(server.requests())
            link.online = True
            wait_for(lambda: on_server(dav, "/far.bin", bytes(content)), timeout=60,
                     what="the edit")  # fmt: skip
            sent = [r for r in server.requests()[served:] if "/far.bin" not in r.path]
            assert [r.method for r in sent if "/patch" in r.path] == ["POST"]
            assert not [r for r in sent if "/chunks/" in r.path or "/manifest" in r.path]


def test_an_upload_cut_off_by_the_server_going_away_resumes_when_it_is_back(
    server: LoggedServer, dav: httpx.Client, tmp_path: Path
) -> None:
    data = random.Random(9).randbytes(24 * MiB)
    with relay(server.url) as link:
        mountpoint, cache = tmp_path / "mnt", tmp_path / "cache"
        with mounted(link.url, mountpoint, cache, "--upload-delay", "0") as mnt:
            link.chunk_puts_left = 3  # the link goes down after the third chunk
            (mnt / "big.bin").write_bytes(data)
            wait_for(lambda: not link.online, what="the link to go down mid-upload")
            assert dav.get("/big.bin").content == b""  # made at create; no content yet
            assert mount_info(mnt)["uploads"]["pending"] == 1
            assert (mnt / "big.bin").read_bytes() == data  # from the working copy
            before = server.requests()
            had = {r.path for r in before
                   if r.method == "PUT" and "/chunks/" in r.path and r.status < 300}  # fmt: skip
            link.online = True
            wait_for(lambda: on_server(dav, "/big.bin", data), timeout=60, what="the upload")
    # (a PUT cut off when the link went down goes again; a stored one never)
    again = [r.path for r in server.requests()[len(before) :] if r.path in had]
    assert not again, "a chunk the server had was sent again"


def test_umount_uploads_what_is_pending_first(
    server: LoggedServer, dav: httpx.Client, tmp_path: Path
) -> None:
    data = {f"/u{i}.bin": os.urandom(400_000 + i) for i in range(3)}
    # A day's delay: only umount's "upload now" can send them in time.
    with mounted(
        server.url, tmp_path / "mnt", tmp_path / "cache", "--upload-delay", "86400"
    ) as mnt:
        for path, content in data.items():
            (mnt / path.lstrip("/")).write_bytes(content)
        assert "uploads: 3 pending" in drivegate("status", str(mnt)).stdout
        done = drivegate("umount", str(mnt))
        assert done.returncode == 0, done.stderr
        assert "unmounted" in done.stdout
    for path, content in data.items():
        assert dav.get(path).content == content


def test_a_full_cache_disk_answers_enospc_and_keeps_earlier_data(
    server: LoggedServer, dav: httpx.Client, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(disk)],
                          capture_output=True, check=False)  # fmt: skip
    if made.returncode != 0:
        pytest.skip("cannot mount a small tmpfs for the cache dir here")
    try:
        cache = disk / "cache"
        with mounted(server.url, tmp_path / "mnt", cache, "--cache-size", "16M",
                     "--upload-delay", "0") as mnt:  # fmt: skip
            first = os.urandom(2 * 1024 * 1024)
            (mnt / "first.bin").write_bytes(first)
            wait_for(lambda: on_server(dav, "/first.bin", first), what="first.bin")
            huge = open(mnt / "huge.bin", "wb", buffering=0)  # noqa: SIM115 (closed below)
            with pytest.raises(OSError) as raised:
                for _ in range(40):
                    huge.write(os.urandom(1024 * 1024))
            assert raised.value.errno == errno.ENOSPC
            with contextlib.suppress(OSError):  # its close may find the disk full too
                huge.close()
            assert (mnt / "first.bin").read_bytes() == first
            assert on_server(dav, "/first.bin", first)
            os.unlink(mnt / "huge.bin")  # frees its working copy (once its upload lets go)

            def write_after() -> bool:
                (mnt / "after.bin").write_bytes(b"room again")
                return True

            wait_for(write_after, what="room on the cache disk again")
            wait_for(lambda: on_server(dav, "/after.bin", b"room again"), what="after.bin")
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, check=False)


def test_a_file_truncated_again_and_again_while_it_uploads_arrives_whole(
    server: LoggedServer, dav: httpx.Client, tmp_path: Path
) -> None:
    """fsx's pattern under ``--upload-delay 0``: reopen, truncate, write, close, while
    the upload of an earlier state is still reading the working copy. Such an upload
    is abandoned quietly (the file changed under it), never sent short, never stopped
    as failed; the last state arrives."""
    rng = random.Random(9)
    cache = tmp_path / "cache"
    with mounted(server.url, tmp_path / "mnt", cache, "--upload-delay", "0") as mnt:
        path = mnt / "fsx.bin"
        path.write_bytes(rng.randbytes(6 * MiB))
        for _ in range(40):
            with open(path, "r+b") as file:
                file.truncate(rng.randrange(1, 6 * MiB))
                file.seek(rng.randrange(MiB))
                file.write(rng.randbytes(rng.randrange(1, 64 * 1024)))
            wait_for(lambda: True)  # let the upload of that state start
        final = rng.randbytes(3 * MiB + 17)
        path.write_bytes(final)
        wait_for(partial(on_server, dav, "/fsx.bin", final), timeout=60, what="the last state")
    chunk_puts = [
        r for r in server.requests() if r.method == "PUT" and r.path.startswith(f"{API}/chunks/")
    ]
    assert chunk_puts
    assert [r for r in chunk_puts if r.received == 0] == []
    # 400: a chunk whose bytes changed after the cut (the server checks each hash).
    assert {r.status for r in chunk_puts} <= {200, 201, 400}
    log = (cache / "mount.log").read_text()
    assert "Traceback" not in log
    assert "internal error" not in log
    assert "stopped" not in log
