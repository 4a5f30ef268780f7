"""Manifests stored as shared segments: an edit writes only the segments it
touches, every version still reads back whole, gc and fsck follow the
segments, and the migration moves old manifests over unchanged."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import func, select, text

from core import Drive, UserInfo
from core.commit import WriteTarget
from core.db.engine import Database
from core.db.migrate import _config
from core.db.models import ManifestSegment, Segment, SegmentChunk
from core.ids import ChunkHash
from core.records import ChunkRef
from core.segments import SEGMENT_CHUNKS, StoredSegment, entries, layout
from tests.conftest import get, put
from tests.servers import PostgresCluster


def _refs(keys: list[str], length: int = 10) -> list[ChunkRef]:
    return [ChunkRef(i * length, length, ChunkHash(key)) for i, key in enumerate(keys)]


def _stored(placed: list[int | list[ChunkRef]], ids: Iterator[int]) -> list[StoredSegment]:
    """The segments a layout would store, with made-up ids for the new ones."""
    return [
        StoredSegment(next(ids), tuple((ref.hash, ref.length) for ref in item))
        for item in placed
        if isinstance(item, list)
    ]


def test_layout_without_anything_to_reuse_cuts_runs_of_the_segment_size() -> None:
    placed = layout(_refs([f"{i:064x}" for i in range(70)]), [])
    assert [len(item) for item in placed if isinstance(item, list)] == [32, 32, 6]


def test_one_changed_entry_rewrites_only_its_segment() -> None:
    keys = [f"{i:064x}" for i in range(100)]
    base = _stored(layout(_refs(keys), []), iter(range(1, 100)))
    keys[40] = "f" * 64
    placed = layout(_refs(keys), base)
    assert placed[0] == base[0].id
    assert isinstance(placed[1], list) and [r.hash for r in placed[1]] == keys[32:64]
    assert placed[2:] == [base[2].id, base[3].id]


def test_an_inserted_entry_is_absorbed_and_segments_do_not_shrink_over_many_edits() -> None:
    keys = [f"{i:064x}" for i in range(256)]
    ids = iter(range(1, 10_000))
    stored = _stored(layout(_refs(keys), []), ids)
    by_id = {segment.id: segment for segment in stored}
    for edit in range(40):
        at = (edit * 37) % len(keys)
        keys.insert(at, f"{edit:032x}".rjust(64, "e"))
        placed = layout(_refs(keys), list(by_id.values()))
        new = iter(_stored(placed, ids))
        listed: list[StoredSegment] = []
        for item in placed:
            listed.append(next(new) if isinstance(item, list) else by_id[item])
        by_id = {segment.id: segment for segment in listed}
        assert [key for segment in listed for key, _ in segment.entries] == keys
    sizes = [len(segment.entries) for segment in by_id.values()]
    assert max(sizes) <= SEGMENT_CHUNKS
    assert len(sizes) <= len(keys) // SEGMENT_CHUNKS + 12  # a few short ones, not dozens


def test_repeated_content_reuses_the_one_segment_it_is_made_of() -> None:
    keys = ["a" * 64] * 96
    base = _stored(layout(_refs(keys), []), iter(range(1, 10)))
    assert len(base) == 3
    placed = layout(_refs(keys), base[:1])
    assert placed == [base[0].id] * 3


def _counts(drive: Drive) -> tuple[int, int, int]:
    with drive.db.read() as session:
        return tuple(  # type: ignore[return-value]
            session.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (Segment, SegmentChunk, ManifestSegment)
        )


def _chunks(drive: Drive, count: int, seed: int) -> list[tuple[str, bytes]]:
    made = []
    for i in range(count):
        data = f"chunk {seed}-{i} ".encode() * 7
        key = hashlib.sha256(data).hexdigest()
        drive.put_chunk(key, data)
        made.append((key, data))
    return made


def test_an_edit_through_the_sync_api_writes_one_segment_and_every_version_reads_back(
    drive: Drive, alice: UserInfo
) -> None:
    chunks = _chunks(drive, 100, 1)
    size = sum(len(data) for _, data in chunks)
    listing = [(key, len(data)) for key, data in chunks]
    first, _ = drive.commit(WriteTarget(alice.id, path="/big.bin"), listing, size)
    before = _counts(drive)
    assert before == (4, 100, 4)

    (changed,) = _chunks(drive, 1, 2)
    edited = list(chunks)
    edited[50] = changed
    second, _ = drive.commit(
        WriteTarget(alice.id, node_id=first.info.id, base_version_id=first.info.version_id),
        [(key, len(data)) for key, data in edited],
        sum(len(data) for _, data in edited),
    )
    segments, entries_, listed = _counts(drive)
    assert (segments, entries_, listed) == (before[0] + 1, before[1] + 32, before[2] + 4)
    assert get(drive, alice, "/big.bin", version=1) == b"".join(data for _, data in chunks)
    assert get(drive, alice, "/big.bin") == b"".join(data for _, data in edited)
    manifest, _ = drive.manifest(alice.id, "/big.bin")
    assert [ref.hash for ref in manifest] == [key for key, _ in edited]
    assert manifest[-1].offset + manifest[-1].length == second.info.size


def test_a_webdav_style_rewrite_shares_the_unchanged_segments_of_the_current_version(
    drive: Drive, alice: UserInfo
) -> None:
    data = os.urandom(64 * 1024 * 1024)  # ~50 chunks: two segments
    put(drive, alice, "/f.bin", data)
    segments_before, entries_before, _ = _counts(drive)
    assert segments_before == 2
    put(drive, alice, "/f.bin", data[:-10] + b"0123456789")
    segments_after, entries_after, _ = _counts(drive)
    assert segments_after - segments_before == 1  # the last one; the first is shared
    assert entries_after - entries_before == entries_before - SEGMENT_CHUNKS
    assert get(drive, alice, "/f.bin") == data[:-10] + b"0123456789"


def test_purging_the_old_version_keeps_the_shared_segments_and_gc_frees_the_rest(
    drive: Drive, alice: UserInfo
) -> None:
    chunks = _chunks(drive, 40, 3)
    listing = [(key, len(data)) for key, data in chunks]
    size = sum(length for _, length in listing)
    first, _ = drive.commit(WriteTarget(alice.id, path="/f"), listing, size)
    (changed,) = _chunks(drive, 1, 4)
    listing[0] = (changed[0], len(changed[1]))
    size = sum(length for _, length in listing)
    target = WriteTarget(alice.id, node_id=first.info.id, base_version_id=first.info.version_id)
    drive.commit(target, listing, size)
    with drive.db.write() as session:  # the first version goes; the second keeps its segments
        session.execute(text("DELETE FROM versions WHERE number = 1 AND node_id = :n"),
                        {"n": first.info.id})  # fmt: skip
    report = drive.gc()
    assert report.manifests == 1 and report.chunks == 1  # chunk 0 of the first version
    assert get(drive, alice, "/f") == changed[1] + b"".join(data for _, data in chunks[1:])
    assert not drive.fsck(verify=True).damaged
    drive.delete(alice.id, "/f")
    for entry in drive.trash(alice.id):
        drive.purge_trash(alice.id, entry.id)
    assert _counts(drive) == (0, 0, 0)
    assert drive.gc().chunks == 40


@pytest.fixture(params=["sqlite", "postgres"])
def old_database(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Database]:
    """An empty database, migrated only up to revision 0006."""
    pg: PostgresCluster | None = None
    name = None
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path}/old.db")
    else:
        pg = request.getfixturevalue("pg")
        name = pg.create_database()
        database = Database(pg.url(name))
    with database.engine.begin() as connection:
        command.upgrade(_config(connection), "0006")
    try:
        yield database
    finally:
        database.dispose()
        if pg is not None and name is not None:
            pg.drop_database(name)


def test_the_migration_cuts_old_manifests_into_segments_in_order(old_database: Database) -> None:
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(70)]
    with old_database.engine.begin() as connection:
        for key in keys:
            connection.execute(
                text("INSERT INTO chunks (hash, length, stored_length, last_seen) "
                     "VALUES (:k, 10, 10, :t)"), {"k": key, "t": time.time()},
            )  # fmt: skip
        for manifest_id, count in ((1, 70), (2, 1), (3, 0)):
            connection.execute(
                text("INSERT INTO manifests (id, size, sha256, chunk_count, created_at) "
                     "VALUES (:m, :s, NULL, :c, 0)"),
                {"m": manifest_id, "s": 10 * count, "c": count},
            )  # fmt: skip
            for idx in range(count):
                connection.execute(
                    text('INSERT INTO manifest_chunks (manifest_id, idx, "offset", length, '
                         "chunk_hash) VALUES (:m, :i, :o, 10, :k)"),
                    {"m": manifest_id, "i": idx, "o": idx * 10, "k": keys[idx]},
                )  # fmt: skip
        command.upgrade(_config(connection), "head")
    with old_database.read() as session:
        assert entries(session, 1) == _refs(keys)
        assert entries(session, 2) == _refs(keys[:1])
        assert entries(session, 3) == []
        assert session.execute(select(func.count()).select_from(Segment)).scalar_one() == 4
