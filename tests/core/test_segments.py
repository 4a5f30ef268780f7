"""Manifests stored as shared segments: an edit writes only the segments it
touches, every version still reads back whole, gc and fsck follow the
segments, and the migration moves old manifests over unchanged."""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import time
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import func, select, text

from cdc.chunking import ChunkRef
from core import (
    Drive,
    InvalidRequest,
    MissingChunks,
    NodeInfo,
    Splice,
    UserInfo,
    VersionConflict,
)
from core.commit import WriteTarget
from core.db.engine import Database
from core.db.migrate import _config
from core.db.models import ManifestSegment, Segment, SegmentChunk, Version
from core.ids import ChunkHash, VersionId
from core.segments import SEGMENT_CHUNKS, Placed, Reused, StoredSegment, entries, layout
from tests.conftest import get, put
from tests.support.servers import PostgresCluster


def _refs(keys: list[str], length: int = 10) -> list[ChunkRef]:
    return [ChunkRef(i * length, length, ChunkHash(key)) for i, key in enumerate(keys)]


def _stored(placed: list[Placed], ids: Iterator[int]) -> list[StoredSegment]:
    """The segments a layout would store, with made-up ids for the new ones."""
    return [
        StoredSegment(next(ids), tuple((ref.hash, ref.length) for ref in item))
        for item in placed
        if isinstance(item, list)
    ]


def _ids(placed: list[Placed]) -> list[int | None]:
    return [None if isinstance(item, list) else item.segment_id for item in placed]


def test_layout_without_anything_to_reuse_cuts_runs_of_the_segment_size() -> None:
    placed = layout(_refs([f"{i:064x}" for i in range(70)]), [])
    assert [len(item) for item in placed if isinstance(item, list)] == [32, 32, 6]


def test_one_changed_entry_rewrites_only_its_segment() -> None:
    keys = [f"{i:064x}" for i in range(100)]
    base = _stored(layout(_refs(keys), []), iter(range(1, 100)))
    keys[40] = "f" * 64
    placed = layout(_refs(keys), base)
    assert _ids(placed) == [base[0].id, None, base[2].id, base[3].id]
    assert isinstance(placed[1], list) and [r.hash for r in placed[1]] == keys[32:64]


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
            listed.append(next(new) if isinstance(item, list) else by_id[item.segment_id])
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
    assert _ids(placed) == [base[0].id] * 3
    assert [item.offset for item in placed if isinstance(item, Reused)] == [0, 320, 640]


def _counts(drive: Drive) -> tuple[int, int, int]:
    with drive.db.read() as session:
        return tuple(  # type: ignore[return-value]
            session.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (Segment, SegmentChunk, ManifestSegment)
        )


def _chunks(drive: Drive, user: UserInfo, count: int, seed: int) -> list[tuple[str, bytes]]:
    made = []
    for i in range(count):
        data = f"chunk {seed}-{i} ".encode() * 7
        key = hashlib.sha256(data).hexdigest()
        drive.put_chunk(user.id, key, data)
        made.append((key, data))
    return made


def test_an_edit_through_the_sync_api_writes_one_segment_and_every_version_reads_back(
    drive: Drive, alice: UserInfo
) -> None:
    chunks = _chunks(drive, alice, 100, 1)
    size = sum(len(data) for _, data in chunks)
    listing = [(key, len(data)) for key, data in chunks]
    first, _ = drive.commit(WriteTarget(alice.id, path="/big.bin"), listing, size)
    before = _counts(drive)
    assert before == (4, 100, 4)

    (changed,) = _chunks(drive, alice, 1, 2)
    edited = list(chunks)
    edited[50] = changed
    second, _ = drive.commit(
        WriteTarget(alice.id, node_id=first.id, base_version_id=first.version_id),
        [(key, len(data)) for key, data in edited],
        sum(len(data) for _, data in edited),
    )
    segments, entries_, listed = _counts(drive)
    assert (segments, entries_, listed) == (before[0] + 1, before[1] + 32, before[2] + 4)
    assert get(drive, alice, "/big.bin", version=1) == b"".join(data for _, data in chunks)
    assert get(drive, alice, "/big.bin") == b"".join(data for _, data in edited)
    manifest = drive.manifest(alice.id, "/big.bin").chunks
    assert [ref.hash for ref in manifest] == [key for key, _ in edited]
    assert manifest[-1].offset + manifest[-1].length == second.size


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
    chunks = _chunks(drive, alice, 40, 3)
    listing = [(key, len(data)) for key, data in chunks]
    size = sum(length for _, length in listing)
    first, _ = drive.commit(WriteTarget(alice.id, path="/f"), listing, size)
    (changed,) = _chunks(drive, alice, 1, 4)
    listing[0] = (changed[0], len(changed[1]))
    size = sum(length for _, length in listing)
    target = WriteTarget(alice.id, node_id=first.id, base_version_id=first.version_id)
    drive.commit(target, listing, size)
    with drive.db.write() as session:  # the first version goes; the second keeps its segments
        session.execute(text("DELETE FROM versions WHERE number = 1 AND node_id = :n"),
                        {"n": first.id})  # fmt: skip
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


def _spliced(
    drive: Drive, state: NodeInfo, splice: Splice, new: list[tuple[str, bytes]], size: int
) -> NodeInfo:
    alice = drive.user("alice")
    target = WriteTarget(alice.id, node_id=state.id, base_version_id=state.version_id)
    listing = [(key, len(data)) for key, data in new]
    done, _ = drive.commit(target, listing, size, splice=splice)
    return done


def test_random_splices_give_the_entries_a_list_splice_gives_and_segments_stay_full(
    drive: Drive, alice: UserInfo
) -> None:
    pool = _chunks(drive, alice, 60, 5)
    rng = random.Random(7)
    model = [rng.choice(pool) for _ in range(150)]
    state, _ = drive.commit(
        WriteTarget(alice.id, path="/s"), [(k, len(d)) for k, d in model],
        sum(len(d) for _, d in model),
    )  # fmt: skip
    for _ in range(30):
        start = rng.randrange(len(model) + 1)
        end = min(len(model), start + rng.choice([0, 1, 1, 2, 5, 40]))
        new = [rng.choice(pool) for _ in range(rng.choice([0, 1, 1, 3, 35]))]
        model[start:end] = new
        size = sum(len(d) for _, d in model)
        state = _spliced(drive, state, Splice(start, end), new, size)
        manifest = drive.manifest(alice.id, "/s").chunks
        assert [ref.hash for ref in manifest] == [key for key, _ in model]
        assert (
            [ref.offset for ref in manifest]
            == list(itertools.accumulate((len(d) for _, d in model[:-1]), initial=0))
            if model
            else manifest == []
        )
    assert get(drive, alice, "/s") == b"".join(d for _, d in model)
    with drive.db.read() as session:
        listed = session.execute(
            select(func.count()).select_from(ManifestSegment)
            .where(ManifestSegment.manifest_id == Version.manifest_id,
                   Version.id == state.version_id)
        ).scalar_one()  # fmt: skip
    assert listed <= len(model) // SEGMENT_CHUNKS + 8  # a few short segments, not dozens
    assert not drive.fsck().damaged


def test_a_one_entry_splice_of_a_big_manifest_writes_one_segment(
    drive: Drive, alice: UserInfo
) -> None:
    chunks = _chunks(drive, alice, 100, 6)
    size = sum(len(d) for _, d in chunks)
    state, _ = drive.commit(
        WriteTarget(alice.id, path="/b"), [(k, len(d)) for k, d in chunks], size
    )
    before = _counts(drive)
    (new,) = _chunks(drive, alice, 1, 7)
    size += len(new[1]) - len(chunks[70][1])
    state = _spliced(drive, state, Splice(70, 71), [new], size)
    assert _counts(drive) == (before[0] + 1, before[1] + 32, before[2] + 4)
    chunks[70] = new
    assert get(drive, alice, "/b") == b"".join(d for _, d in chunks)


def test_a_bad_splice_is_refused_and_changes_nothing(drive: Drive, alice: UserInfo) -> None:
    chunks = _chunks(drive, alice, 10, 8)
    size = sum(len(d) for _, d in chunks)
    listing = [(k, len(d)) for k, d in chunks]
    state, _ = drive.commit(WriteTarget(alice.id, path="/c"), listing, size)
    (new,) = _chunks(drive, alice, 1, 9)
    unknown = ("e" * 64, 10)
    target = WriteTarget(alice.id, node_id=state.id, base_version_id=state.version_id)
    cases: list[tuple[WriteTarget, Splice, list[tuple[str, int]], int, type[Exception]]] = [
        (target, Splice(5, 4), [], size, InvalidRequest),
        (target, Splice(0, 11), [], size, InvalidRequest),
        (target, Splice(0, 1), [(new[0], len(new[1]))], size + 1, InvalidRequest),
        (target, Splice(0, 1), [unknown], size - len(chunks[0][1]) + 10, MissingChunks),
        (WriteTarget(alice.id, path="/c"), Splice(0, 1), [], size, InvalidRequest),
        (WriteTarget(alice.id, node_id=state.id,
                     base_version_id=VersionId((state.version_id or 0) + 99)),
         Splice(0, 0), [], size, VersionConflict),
    ]  # fmt: skip
    counts = _counts(drive)
    for case_target, splice, case_chunks, case_size, error in cases:
        with pytest.raises(error):
            drive.commit(case_target, case_chunks, case_size, splice=splice)
    assert _counts(drive) == counts
    assert [v.number for v in drive.versions(alice.id, "/c")] == [1]
    assert get(drive, alice, "/c") == b"".join(d for _, d in chunks)
