"""The drive service's file and folder operations, on both backends."""

from __future__ import annotations

import hashlib
import io
import os
import random

import pytest

from cdc.chunking import MAX_CHUNK, MIN_CHUNK
from core import Drive, NameTaken, NotFound, QuotaExceeded, UserInfo
from tests.conftest import get, put


def test_write_then_read_round_trips_many_sizes(drive: Drive, alice: UserInfo) -> None:
    rng = random.Random(1)
    for size in (
        0,
        1,
        MIN_CHUNK - 1,
        MIN_CHUNK,
        MIN_CHUNK + 1,
        MAX_CHUNK - 1,
        MAX_CHUNK,
        MAX_CHUNK + 1,
        9 * 1024 * 1024 + 7,
    ):
        data = rng.randbytes(size)
        info = put(drive, alice, f"/f{size}", data)
        assert info.size == size  # type: ignore[attr-defined]
        assert get(drive, alice, f"/f{size}") == data


def test_stat_and_listing(drive: Drive, alice: UserInfo) -> None:
    drive.mkdir(alice.id, "/docs")
    put(drive, alice, "/docs/b.txt", b"bee")
    put(drive, alice, "/docs/a.txt", b"a")
    drive.mkdir(alice.id, "/docs/sub")
    names = [(n.name, n.is_folder, n.size) for n in drive.listdir(alice.id, "/docs")]
    assert names == [("a.txt", False, 1), ("b.txt", False, 3), ("sub", True, 0)]
    info = drive.stat(alice.id, "/docs/b.txt")
    assert info.version_number == 1
    assert info.sha256 == hashlib.sha256(b"bee").hexdigest()
    assert drive.stat(alice.id, "/").is_folder


def test_range_reads_touch_only_needed_chunks(drive: Drive, alice: UserInfo) -> None:
    data = random.Random(2).randbytes(24 * 1024 * 1024)
    put(drive, alice, "/big", data)
    found = drive.manifest(alice.id, "/big")
    refs, size = found.chunks, found.version.size
    assert size == len(data) and len(refs) > 8
    with drive.open_read(alice.id, "/big") as reader:
        offset = int(len(data) * 0.9)
        reader.seek(offset)
        assert reader.read(100) == data[offset : offset + 100]
        assert reader.chunks_fetched == 1
        reader.seek(-10, io.SEEK_END)
        assert reader.read() == data[-10:]
        assert reader.chunks_fetched == 2


def test_dedup_stores_a_chunk_once_across_files_and_users(
    drive: Drive, alice: UserInfo, bob: UserInfo
) -> None:
    data = os.urandom(6 * 1024 * 1024)
    put(drive, alice, "/one", data)
    before = sorted(key for key, _ in drive.backend.store.list_all())
    put(drive, alice, "/two", data)
    put(drive, bob, "/three", data)
    after = sorted(key for key, _ in drive.backend.store.list_all())
    assert before == after
    assert get(drive, bob, "/three") == data


def test_text_chunks_are_stored_compressed(drive: Drive, alice: UserInfo) -> None:
    text = b"All work and no play makes Jack a dull boy.\n" * 100_000
    put(drive, alice, "/jack.txt", text)
    refs = drive.manifest(alice.id, "/jack.txt").chunks
    stored = sum(len(drive.backend.store.get(ref.hash)) for ref in refs)
    assert stored < len(text) / 10
    assert get(drive, alice, "/jack.txt") == text


def test_mkdir_move_rename_and_copy(drive: Drive, alice: UserInfo) -> None:
    drive.makedirs(alice.id, "/a/b")
    put(drive, alice, "/a/b/f.txt", b"content")
    moved = drive.move(alice.id, "/a/b", "/b2")
    assert moved.name == "b2"
    assert get(drive, alice, "/b2/f.txt") == b"content"
    with pytest.raises(NotFound):
        drive.stat(alice.id, "/a/b")
    drive.move(alice.id, "/b2/f.txt", "/b2/g.txt")
    assert [n.name for n in drive.listdir(alice.id, "/b2")] == ["g.txt"]
    drive.copy(alice.id, "/b2", "/a/copy")
    assert get(drive, alice, "/a/copy/g.txt") == b"content"
    # copies share manifests: no new chunk was stored
    refs_a = drive.manifest(alice.id, "/a/copy/g.txt").chunks
    refs_b = drive.manifest(alice.id, "/b2/g.txt").chunks
    assert refs_a == refs_b
    assert drive.user("alice").used_bytes == 2 * len(b"content")


def test_overwriting_move_becomes_a_new_version_of_the_target(
    drive: Drive, alice: UserInfo
) -> None:
    put(drive, alice, "/report.doc", b"v1")
    target = drive.stat(alice.id, "/report.doc")
    put(drive, alice, "/~tmp1234.tmp", b"v2 saved by office")
    with pytest.raises(NameTaken):
        drive.move(alice.id, "/~tmp1234.tmp", "/report.doc")
    after = drive.move(alice.id, "/~tmp1234.tmp", "/report.doc", overwrite=True)
    assert after.id == target.id
    assert [v.number for v in drive.versions(alice.id, "/report.doc")] == [1, 2]
    assert get(drive, alice, "/report.doc") == b"v2 saved by office"
    assert [n.name for n in drive.listdir(alice.id, "/")] == ["report.doc"]
    assert drive.user("alice").used_bytes == len(b"v2 saved by office")


def test_compare_and_set_write(drive: Drive, alice: UserInfo) -> None:
    from core import VersionConflict

    first = drive.write(alice.id, "/f", io.BytesIO(b"1"), create_only=True)
    with pytest.raises(VersionConflict):
        drive.write(alice.id, "/f", io.BytesIO(b"x"), create_only=True)
    second = drive.write(alice.id, "/f", io.BytesIO(b"2"), base_version_id=first.version_id)
    with pytest.raises(VersionConflict) as stale:
        drive.write(alice.id, "/f", io.BytesIO(b"3"), base_version_id=first.version_id)
    assert stale.value.current_version == second.version_id
    assert get(drive, alice, "/f") == b"2"


def test_each_change_appends_to_the_journal(drive: Drive, alice: UserInfo) -> None:
    start = drive.cursor(alice.id)
    drive.mkdir(alice.id, "/d")
    put(drive, alice, "/d/f", b"x")
    put(drive, alice, "/d/f", b"y")
    drive.move(alice.id, "/d/f", "/d/g")
    drive.delete(alice.id, "/d/g")
    page = drive.change_page(alice.id, start)
    assert [c.kind for c in page.changes] == ["create", "create", "update", "move", "trash"]
    assert [c.seq for c in page.changes] == list(range(start + 1, start + 6))
    assert page.cursor == drive.cursor(alice.id) == start + 5
    assert not page.more
    later = drive.change_page(alice.id, start + 3, limit=1)
    assert [c.kind for c in later.changes] == ["move"]
    assert later.more


def test_users_see_only_their_own_tree(drive: Drive, alice: UserInfo, bob: UserInfo) -> None:
    put(drive, alice, "/secret.txt", b"alice's")
    with pytest.raises(NotFound):
        drive.stat(bob.id, "/secret.txt")
    assert drive.listdir(bob.id, "/") == []
    assert drive.change_page(bob.id, 0).changes == []


KIB = 1024


def test_dead_properties_count_toward_the_quota(drive: Drive) -> None:
    """Metadata is no storage outside the quota: a property's name and value bytes
    are charged when set or copied and freed when removed or purged."""
    user = drive.add_user("props", "props-password", quota=200 * KIB)
    put(drive, user, "/f.txt", bytes(100 * KIB))
    name, value = "{urn:x}note", bytes(60 * KIB)
    drive.set_properties(user.id, "/f.txt", {name: value})
    held = len(name) + len(value)
    assert drive.user("props").used_bytes == 100 * KIB + held
    with pytest.raises(QuotaExceeded):
        drive.set_properties(user.id, "/f.txt", {"{urn:x}more": bytes(60 * KIB)})
    assert drive.properties(user.id, [drive.stat(user.id, "/f.txt").id]) == {
        drive.stat(user.id, "/f.txt").id: {name: value}
    }
    drive.set_properties(user.id, "/f.txt", {name: b"short"})  # a smaller value frees room
    assert drive.user("props").used_bytes == 100 * KIB + len(name) + 5
    with pytest.raises(QuotaExceeded):  # the copy's content and properties do not fit
        drive.copy(user.id, "/f.txt", "/g.txt")
    drive.set_quota("props", None)
    drive.copy(user.id, "/f.txt", "/g.txt")
    assert drive.user("props").used_bytes == 2 * (100 * KIB + len(name) + 5)
    drive.delete(user.id, "/g.txt")
    (entry,) = drive.trash(user.id)
    drive.purge_trash(user.id, entry.id)
    drive.set_properties(user.id, "/f.txt", {name: None})
    assert drive.user("props").used_bytes == 100 * KIB
    assert drive.fsck().quota_mismatches == []
