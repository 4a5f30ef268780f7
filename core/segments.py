"""A manifest's entries, stored as shared segments.

A manifest is a list of segments, each a run of up to ``SEGMENT_CHUNKS``
consecutive entries (chunk hash, length). A new manifest reuses, by id, every
segment of the file's previous manifest whose run it still holds, and writes
new segments only for the entries between them (``layout``). So a 1-byte
edit of a 1 GiB file (~850 chunks) writes one segment of ~32 entries and the
~27 rows that list the manifest's segments, not ~850 entries with as many
index updates: the commit's cost, and the WAL or PostgreSQL log it writes,
follow the size of the change rather than the size of the file.

Segments are immutable. One that no manifest names any more is deleted with
the last manifest that named it (``delete_unused``), and gc sweeps any left
over; only then can the chunks it named become garbage.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.orm import Session

from cdc.chunking import ChunkRef
from core.db.models import ManifestSegment, Segment, SegmentChunk, Version
from core.errors import InvalidRequest
from core.ids import ChunkHash

SEGMENT_CHUNKS = 32
"""Entries per segment at most. An edit rewrites one segment and lists all of
them: ~32 + n/32 rows for an n-chunk file, least about here for 1 GiB files."""

_SEGMENTS = cast(Table, Segment.__table__)
_ENTRIES = cast(Table, SegmentChunk.__table__)
_LISTING = cast(Table, ManifestSegment.__table__)

Entry = tuple[ChunkHash, int]  # chunk hash, length


@dataclass(frozen=True, slots=True)
class StoredSegment:
    """A committed segment: its id and its entries, in order."""

    id: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Reused:
    """A stored segment in a new manifest, starting at byte ``offset`` of the file."""

    segment_id: int
    count: int
    size: int
    offset: int


Placed = Reused | list[ChunkRef]
"""An item of a layout: a stored segment, or the entries of a new segment (with
their offsets in the file)."""


@dataclass(frozen=True, slots=True)
class Listed:
    """A segment as a stored manifest lists it."""

    segment_id: int
    first_chunk: int
    offset: int
    count: int
    size: int


def layout(refs: Sequence[ChunkRef], reusable: Sequence[StoredSegment]) -> list[Placed]:
    """How to store ``refs`` as segments: the stored segments of ``reusable`` whose
    entries appear in ``refs`` where the walk reaches them, and new segments of
    the entries between.

    A run of new entries that a reusable segment would follow takes that
    segment's entries in as well when both fit in one segment, so edits do not
    leave ever smaller segments behind.
    """
    by_first: dict[Entry, list[StoredSegment]] = {}
    for segment in reusable:
        if segment.entries:
            by_first.setdefault(segment.entries[0], []).append(segment)
    placed: list[Placed] = []
    run: list[ChunkRef] = []
    position = 0
    while position < len(refs):
        found = _stored_at(refs, position, by_first)
        if found is not None and run and len(run) + len(found.entries) <= SEGMENT_CHUNKS:
            run.extend(refs[position : position + len(found.entries)])
            position += len(found.entries)
        elif found is not None:
            if run:
                placed.append(run)
                run = []
            size = sum(length for _, length in found.entries)
            placed.append(Reused(found.id, len(found.entries), size, refs[position].offset))
            position += len(found.entries)
        else:
            run.append(refs[position])
            position += 1
        if len(run) >= SEGMENT_CHUNKS:
            placed.append(run[:SEGMENT_CHUNKS])
            run = run[SEGMENT_CHUNKS:]
    if run:
        placed.append(run)
    return placed


def splice(
    session: Session, base: Sequence[Listed], start: int, end: int, new: Sequence[Entry]
) -> list[Placed]:
    """The layout of the manifest listed by ``base`` with its entries ``start`` to
    ``end`` (exclusive) replaced by ``new``: the segments wholly before or after
    that range are reused as they are (those after it moved by the change in
    size), and only the ones it touches are read and written again.

    InvalidRequest if the range is not within the manifest.
    """
    total = base[-1].first_chunk + base[-1].count if base else 0
    if not 0 <= start <= end <= total:
        raise InvalidRequest(f"entries {start} to {end} are not within the base's {total}")
    lo = bisect.bisect_right([s.first_chunk + s.count for s in base], start)
    # An insertion (start == end) inside a segment rewrites that segment too.
    hi = bisect.bisect_left([s.first_chunk for s in base], end, lo)
    kept_before = start - base[lo].first_chunk if lo < hi else 0
    kept_after = base[hi - 1].first_chunk + base[hi - 1].count - end if lo < hi else 0
    middle_count = kept_before + len(new) + kept_after
    short_tail = middle_count % SEGMENT_CHUNKS
    if hi < len(base) and short_tail and short_tail + base[hi].count <= SEGMENT_CHUNKS:
        kept_after += base[hi].count  # take the next segment in: no ever-shorter ones
        hi += 1
    old = _entries_of(session, [s.segment_id for s in base[lo:hi]])
    middle = old[:kept_before] + list(new) + old[len(old) - kept_after :]
    end_of_file = base[-1].offset + base[-1].size if base else 0
    offset = base[lo].offset if lo < len(base) else end_of_file
    refs = []
    for key, length in middle:
        refs.append(ChunkRef(offset, length, key))
        offset += length
    shift = sum(length for _, length in middle) - sum(s.size for s in base[lo:hi])
    placed: list[Placed] = [Reused(s.segment_id, s.count, s.size, s.offset) for s in base[:lo]]
    placed += [refs[at : at + SEGMENT_CHUNKS] for at in range(0, len(refs), SEGMENT_CHUNKS)]
    placed += [Reused(s.segment_id, s.count, s.size, s.offset + shift) for s in base[hi:]]
    return placed


def _entries_of(session: Session, segment_ids: list[int]) -> list[Entry]:
    """The entries of the segments, one after the other."""
    if not segment_ids:
        return []
    by_segment: dict[int, list[Entry]] = {}
    for segment_id, key, length in session.execute(
        _SEGMENT_ENTRIES, {"ids": list(set(segment_ids))}
    ):
        by_segment.setdefault(segment_id, []).append((ChunkHash(key), length))
    return [entry for segment_id in segment_ids for entry in by_segment[segment_id]]


def listed_entries(session: Session, listed: Sequence[Listed]) -> list[ChunkRef]:
    """The entries of consecutive segments of a manifest's listing, with their offsets
    in the file: a window of a big file's chunks, without loading the others."""
    refs: list[ChunkRef] = []
    offset = listed[0].offset if listed else 0
    for key, length in _entries_of(session, [item.segment_id for item in listed]):
        refs.append(ChunkRef(offset, length, key))
        offset += length
    return refs


def listing(session: Session, manifest_id: int) -> list[Listed]:
    """The segments a stored manifest lists, in order."""
    return [Listed(*row) for row in session.execute(_LISTED, {"manifest_id": manifest_id})]


def _stored_at(
    refs: Sequence[ChunkRef], position: int, by_first: dict[Entry, list[StoredSegment]]
) -> StoredSegment | None:
    ref = refs[position]
    for segment in by_first.get((ref.hash, ref.length), ()):
        end = position + len(segment.entries)
        if end <= len(refs) and all(
            (refs[at].hash, refs[at].length) == entry
            for at, entry in zip(range(position, end), segment.entries, strict=True)
        ):
            return segment
    return None


def write(session: Session, manifest_id: int, placed: Sequence[Placed]) -> None:
    """Store a new manifest's layout (``layout`` or ``splice`` made it)."""
    runs = [item for item in placed if isinstance(item, list)]
    new_ids: list[int] = []
    if runs:
        new_ids = list(
            session.execute(
                insert(_SEGMENTS).returning(_SEGMENTS.c.id, sort_by_parameter_order=True),
                [{"chunk_count": len(run), "size": sum(ref.length for ref in run)} for run in runs],
            ).scalars()
        )
        session.execute(
            _INSERT_ENTRIES,
            [
                {"segment_id": segment_id, "idx": idx, "offset": ref.offset - run[0].offset,
                 "length": ref.length, "chunk_hash": ref.hash}
                for segment_id, run in zip(new_ids, runs, strict=True)
                for idx, ref in enumerate(run)
            ],
        )  # fmt: skip
    fresh = iter(new_ids)
    rows = []
    first_chunk = 0
    for idx, item in enumerate(placed):
        if isinstance(item, list):
            segment_id, count, offset = next(fresh), len(item), item[0].offset
        else:
            segment_id, count, offset = item.segment_id, item.count, item.offset
        rows.append({"manifest_id": manifest_id, "idx": idx, "segment_id": segment_id,
                     "first_chunk": first_chunk, "offset": offset})  # fmt: skip
        first_chunk += count
    if rows:
        session.execute(_INSERT_LISTING, rows)


def totals(placed: Sequence[Placed]) -> tuple[int, int]:
    """The entries and bytes of a layout."""
    count = size = 0
    for item in placed:
        if isinstance(item, list):
            count += len(item)
            size += sum(ref.length for ref in item)
        else:
            count += item.count
            size += item.size
    return count, size


def load(session: Session, manifest_id: int) -> list[StoredSegment]:
    """A manifest's segments with their entries, in order."""
    runs: dict[int, tuple[int, list[Entry]]] = {}  # by place in the manifest
    for place, segment_id, key, length in session.execute(_STORED, {"manifest_id": manifest_id}):
        runs.setdefault(place, (segment_id, []))[1].append((ChunkHash(key), length))
    return [StoredSegment(segment_id, tuple(run)) for segment_id, run in runs.values()]


def version_manifest(session: Session, version_id: int, node_id: int) -> int | None:
    """The manifest of the node's version ``version_id`` (None: no such version)."""
    found = session.execute(_VERSION_MANIFEST, {"version_id": version_id, "node_id": node_id})
    return found.scalar_one_or_none()


def of_version(session: Session, version_id: int, node_id: int) -> list[StoredSegment]:
    """The segments of the node's version ``version_id`` ([] when there is none)."""
    manifest_id = version_manifest(session, version_id, node_id)
    return [] if manifest_id is None else load(session, manifest_id)


def entries(session: Session, manifest_id: int) -> list[ChunkRef]:
    """A manifest's chunks in order, with their offsets in the file."""
    rows = session.execute(_IN_ORDER, {"manifest_id": manifest_id})
    return [ChunkRef(offset, length, ChunkHash(key)) for offset, length, key in rows]


def of_manifests(session: Session, manifest_ids: Iterable[int]) -> set[int]:
    """The segments the manifests list."""
    wanted = list(manifest_ids)
    found: set[int] = set()
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        found.update(
            session.execute(
                select(_LISTING.c.segment_id).where(_LISTING.c.manifest_id.in_(part))
            ).scalars()
        )
    return found


def delete_unused(session: Session, segment_ids: Iterable[int] | None = None) -> int:
    """Delete those of ``segment_ids`` (None: all segments) no manifest lists; how many."""
    listed = select(_LISTING.c.segment_id).where(_LISTING.c.segment_id == _SEGMENTS.c.id).exists()
    if segment_ids is None:
        done = session.execute(delete(_SEGMENTS).where(~listed))
        return int(done.rowcount)  # type: ignore[attr-defined]
    wanted = list(segment_ids)
    count = 0
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        done = session.execute(delete(_SEGMENTS).where(_SEGMENTS.c.id.in_(part), ~listed))
        count += int(done.rowcount)  # type: ignore[attr-defined]
    return count


# Core statements, built once: no ORM work for a big file's ~850 rows.
_INSERT_ENTRIES = insert(_ENTRIES)
_INSERT_LISTING = insert(_LISTING)
_STORED = (
    select(_LISTING.c.idx, _LISTING.c.segment_id, _ENTRIES.c.chunk_hash, _ENTRIES.c.length)
    .join(_ENTRIES, _ENTRIES.c.segment_id == _LISTING.c.segment_id)
    .where(_LISTING.c.manifest_id == bindparam("manifest_id"))
    .order_by(_LISTING.c.idx, _ENTRIES.c.idx)
)
_VERSIONS = cast(Table, Version.__table__)
_VERSION_MANIFEST = select(_VERSIONS.c.manifest_id).where(
    _VERSIONS.c.id == bindparam("version_id"), _VERSIONS.c.node_id == bindparam("node_id")
)
_LISTED = (
    select(_LISTING.c.segment_id, _LISTING.c.first_chunk, _LISTING.c.offset,
           _SEGMENTS.c.chunk_count, _SEGMENTS.c.size)
    .join(_SEGMENTS, _SEGMENTS.c.id == _LISTING.c.segment_id)
    .where(_LISTING.c.manifest_id == bindparam("manifest_id"))
    .order_by(_LISTING.c.idx)
)  # fmt: skip
_SEGMENT_ENTRIES = (
    select(_ENTRIES.c.segment_id, _ENTRIES.c.chunk_hash, _ENTRIES.c.length)
    .where(_ENTRIES.c.segment_id.in_(bindparam("ids", expanding=True)))
    .order_by(_ENTRIES.c.segment_id, _ENTRIES.c.idx)
)
_IN_ORDER = (
    select(_LISTING.c.offset + _ENTRIES.c.offset, _ENTRIES.c.length, _ENTRIES.c.chunk_hash)
    .join(_ENTRIES, _ENTRIES.c.segment_id == _LISTING.c.segment_id)
    .where(_LISTING.c.manifest_id == bindparam("manifest_id"))
    .order_by(_LISTING.c.idx, _ENTRIES.c.idx)
)
