"""Versions (list, read, restore, retention) and the trash (list, restore, purge)."""

from __future__ import annotations

import time

import pytest

from core import Drive, NotFound, RetentionPolicy, UserInfo
from core.retention import DAY, versions_to_drop
from tests.conftest import get, put


def test_versions_list_read_and_restore_without_copying(drive: Drive, alice: UserInfo) -> None:
    for text in (b"one", b"two", b"three"):
        put(drive, alice, "/f.txt", text)
    listed = drive.versions(alice.id, "/f.txt")
    assert [(v.number, v.size, v.is_current) for v in listed] == [
        (1, 3, False),
        (2, 3, False),
        (3, 5, True),
    ]
    assert get(drive, alice, "/f.txt", version=1) == b"one"
    blobs_before = sorted(drive.backend.store.list_all())
    restored = drive.restore_version(alice.id, "/f.txt", 1)
    assert restored.version_number == 4
    assert get(drive, alice, "/f.txt") == b"one"
    assert sorted(drive.backend.store.list_all()) == blobs_before  # no bytes copied
    assert drive.versions(alice.id, "/f.txt")[-1].origin == "restore"
    assert drive.user("alice").used_bytes == 3
    with pytest.raises(NotFound):
        drive.restore_version(alice.id, "/f.txt", 99)


def test_trash_restore_to_original_place(drive: Drive, alice: UserInfo) -> None:
    drive.makedirs(alice.id, "/a/b")
    put(drive, alice, "/a/b/f.txt", b"data")
    drive.delete(alice.id, "/a/b")
    with pytest.raises(NotFound):
        drive.stat(alice.id, "/a/b/f.txt")
    (entry,) = drive.trash(alice.id)
    assert (entry.name, entry.original_path, entry.is_folder) == ("b", "/a/b", True)
    assert drive.restore_trash(alice.id, entry.id) == "/a/b"
    assert get(drive, alice, "/a/b/f.txt") == b"data"
    assert drive.trash(alice.id) == []


def test_trash_restore_keeps_both_when_the_name_is_taken(drive: Drive, alice: UserInfo) -> None:
    put(drive, alice, "/notes.txt", b"old")
    drive.delete(alice.id, "/notes.txt")
    put(drive, alice, "/notes.txt", b"new")
    (entry,) = drive.trash(alice.id)
    assert drive.restore_trash(alice.id, entry.id) == "/notes (2).txt"
    assert get(drive, alice, "/notes.txt") == b"new"
    assert get(drive, alice, "/notes (2).txt") == b"old"


def test_trash_restore_recreates_a_vanished_folder(drive: Drive, alice: UserInfo) -> None:
    drive.makedirs(alice.id, "/x/y")
    put(drive, alice, "/x/y/f", b"f")
    drive.delete(alice.id, "/x/y/f")
    drive.delete(alice.id, "/x")
    entries = {e.original_path: e for e in drive.trash(alice.id)}
    outer = entries["/x"]
    drive.purge_trash(alice.id, outer.id)
    assert drive.restore_trash(alice.id, entries["/x/y/f"].id) == "/x/y/f"
    assert get(drive, alice, "/x/y/f") == b"f"


def test_purge_frees_quota_and_gc_frees_chunks(drive: Drive, alice: UserInfo) -> None:
    payload = bytes(range(256)) * 4096
    put(drive, alice, "/big", payload)
    drive.delete(alice.id, "/big")
    assert drive.user("alice").used_bytes == len(payload)  # the trash still counts
    (entry,) = drive.trash(alice.id)
    assert drive.purge_trash(alice.id, entry.id) == len(payload)
    assert drive.user("alice").used_bytes == 0
    with pytest.raises(NotFound):
        drive.purge_trash(alice.id, entry.id)
    dry = drive.gc(dry_run=True)
    assert dry.chunks >= 1 and list(drive.backend.store.list_all())
    report = drive.gc()
    assert report.chunks == dry.chunks
    assert list(drive.backend.store.list_all()) == []


def test_other_users_cannot_touch_my_trash(drive: Drive, alice: UserInfo, bob: UserInfo) -> None:
    put(drive, alice, "/mine", b"m")
    drive.delete(alice.id, "/mine")
    (entry,) = drive.trash(alice.id)
    assert drive.trash(bob.id) == []
    with pytest.raises(NotFound):
        drive.restore_trash(bob.id, entry.id)
    with pytest.raises(NotFound):
        drive.purge_trash(bob.id, entry.id)


def test_gc_expires_old_trash_and_prunes_versions(drive: Drive, alice: UserInfo) -> None:
    put(drive, alice, "/f", b"1")
    put(drive, alice, "/f", b"2")
    put(drive, alice, "/t", b"t")
    drive.delete(alice.id, "/t")
    with drive.db.write() as session:  # age everything by 400 days
        from sqlalchemy import update

        from core.db.models import Node, Version

        session.execute(update(Version).values(created_at=Version.created_at - 400 * DAY))
        session.execute(
            update(Node)
            .where(Node.trashed_at.is_not(None))
            .values(trashed_at=Node.trashed_at - 400 * DAY)
        )
    report = drive.gc()
    assert report.trash_entries == 1
    # both versions of /f fall in the same week: the older one goes
    assert report.versions == 1
    assert [v.number for v in drive.versions(alice.id, "/f")] == [2]
    assert drive.trash(alice.id) == []
    assert get(drive, alice, "/f") == b"2"


def test_retention_policy_thins_by_age() -> None:
    now = 1_000 * DAY
    policy = RetentionPolicy(
        keep_all_days=30, keep_daily_days=90, keep_weekly=False, max_versions=100
    )
    versions = [
        (1, now - 100 * DAY),  # beyond daily, weekly off: dropped
        (2, now - 50 * DAY + 100),  # same day as 3: the older goes
        (3, now - 50 * DAY + 200),
        (4, now - 10 * DAY),  # within 30 days: kept
        (5, now - 10 * DAY + 1),
        (6, now),  # current
    ]
    assert sorted(versions_to_drop(versions, 6, now, policy)) == [1, 2]
    capped = RetentionPolicy(keep_all_days=30, max_versions=2)
    assert sorted(versions_to_drop(versions[3:], 6, now, capped)) == [4]
    assert versions_to_drop([(9, now - 999 * DAY)], 9, now, policy) == []  # never the current one
    assert time.time() > 0
