"""A small edit of a file, sent as its changed bytes: the patch commit.

A client that holds only part of a file (the mount's online-only files) and
changed a few bytes of it sends just those bytes, where they go and the new
size. The server re-cuts the chunks around them from the base version's
chunks, which it has (``cdc.deltaplan``: usually the one chunk the edit
lands in) and commits the version as a splice of the base's manifest
(``core.manifestwrite``), which stores the new chunks in the same hold of
the collector lock, writing them while its transaction checks the target.
A 1-byte edit of a 1 GiB file then costs one request carrying one byte, and
no chunk travels either way; a client holding the whole file, or one with
large changes, uploads chunks instead.

The new content is the base version's, cut or extended to ``size``, with
each range's bytes written over it; bytes past the base's end that no range
covers are zeros (as after a truncate that extends a file). The base must be
the file's current version, as for every commit naming one (compare-and-set,
checked again in the commit transaction). A patch whose ranges are empty,
unsorted, overlapping or past ``size`` is refused before anything is stored.
Reading the base verifies every chunk it touches, as every read does.

Only the base's manifest segments around the changes are loaded (``_window``):
a patch of a 10 GiB file costs what one of a 10 MiB file does. If the re-cut
has not met the base's cuts again within them (rare), the plan is made again
over every chunk.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from cdc import deltaplan
from cdc.chunking import MAX_CHUNK, ChunkRef
from core import access, manifestwrite, quota, segments
from core.backend import Backend
from core.commit import WriteTarget
from core.contentreader import ContentReader
from core.db.models import Manifest, Node, Version
from core.errors import InvalidRequest, NotFound, VersionConflict
from core.ids import ChunkHash
from core.manifestwrite import Splice
from core.nodes import manifest
from core.records import NodeInfo
from core.refs import NodeRef
from core.segments import Listed

MAX_RANGES = 1024
MAX_PATCH_BYTES = 16 * 1024 * 1024
"""The most new bytes one patch may carry: beyond a few MiB, chunks are cheaper."""
MAX_PATCH_GROWTH = 64 * 1024 * 1024
"""The most a patch may grow a file by: the server cuts and hashes the zeros of
the growth itself, CPU paid per byte, so a larger one goes as chunks."""


@dataclass(frozen=True)
class Patch:
    """The new size, and the new bytes at their offsets (sorted, disjoint)."""

    size: int
    ranges: Sequence[tuple[int, bytes]]


class _Changed:
    """The offsets a patch writes, and those past the base's end (deltaplan.Changed)."""

    def __init__(self, patch: Patch, base_size: int) -> None:
        spans = [(offset, offset + len(data)) for offset, data in patch.ranges]
        if patch.size > base_size:
            spans.append((base_size, patch.size))
        self.starts: list[int] = []
        self.ends: list[int] = []
        for start, end in sorted(spans):  # merged: the extension may overlap ranges
            if self.ends and start <= self.ends[-1]:
                self.ends[-1] = max(self.ends[-1], end)
            else:
                self.starts.append(start)
                self.ends.append(end)

    def touches(self, start: int, end: int) -> bool:
        # Spans are disjoint and sorted: only the last one starting before ``end`` can reach.
        before = bisect.bisect_left(self.starts, end)
        return before > 0 and self.ends[before - 1] > start


def check(patch: Patch) -> None:
    """InvalidRequest unless the ranges are non-empty, sorted, disjoint and inside the size."""
    if patch.size < 0:
        raise InvalidRequest(f"the size must not be negative, not {patch.size}")
    if len(patch.ranges) > MAX_RANGES:
        raise InvalidRequest(f"a patch holds at most {MAX_RANGES} ranges")
    if sum(len(data) for _, data in patch.ranges) > MAX_PATCH_BYTES:
        raise InvalidRequest(f"a patch carries at most {MAX_PATCH_BYTES} bytes: upload chunks")
    previous_end = 0
    for offset, data in patch.ranges:
        if not data:
            raise InvalidRequest(f"the range at {offset} is empty")
        if offset < previous_end:
            raise InvalidRequest(f"the range at {offset} overlaps or precedes the one before")
        previous_end = offset + len(data)
        if previous_end > patch.size:
            raise InvalidRequest(f"the range at {offset} ends at {previous_end}, past the size")


def commit_patch(backend: Backend, target: WriteTarget, patch: Patch) -> tuple[NodeInfo, bool]:
    """Commit the base version with ``patch`` applied as the file's new version;
    return the file (and False: a patch never creates one)."""
    check(patch)
    if target.node_id is None or target.base_version_id is None:
        raise InvalidRequest("a patch edits a version: give node_id and base_version_id")
    with backend.db.read() as session:
        version_id, manifest_id, base_size = _current(session, target.user_id, target.node_id)
        if version_id != target.base_version_id:
            raise VersionConflict(
                f"node {target.node_id} changed: base version {target.base_version_id}, "
                f"current {version_id}",
                version_id,
                target.node_id,
            )
        _check_growth(session, target.user_id, base_size, patch.size)
        window = _window(session, segments.listing(session, manifest_id), base_size, patch)
    planned = _plan(backend, window, base_size, patch, target.label)
    if planned is None:  # the re-cut went past the window (rare): plan over every chunk
        with backend.db.read() as session:  # a committed manifest never changes
            everything = segments.entries(session, manifest_id)
        whole = _Window(0, everything, patch.size)
        planned = _plan(backend, whole, base_size, patch, target.label)
        assert planned is not None, "a walk over every chunk reaches the end"
    splice, replacement, new_chunks = planned
    return manifestwrite.commit_manifest(
        backend,
        target,
        [(chunk.hash, chunk.length) for chunk in replacement],
        patch.size,
        splice=splice,
        new_chunks=new_chunks,
    )


def _check_growth(session: Session, user_id: int, base_size: int, size: int) -> None:
    """Refuse, before any byte is cut, a growth the patch may not make: over
    ``MAX_PATCH_GROWTH`` (InvalidRequest), or more than the user's free quota
    (QuotaExceeded; the commit charges the quota atomically all the same)."""
    growth = size - base_size
    if growth > MAX_PATCH_GROWTH:
        raise InvalidRequest(
            f"a patch grows a file by at most {MAX_PATCH_GROWTH} bytes, not {growth}: upload chunks"
        )
    quota.require_room(session, user_id, growth)


_CURRENT = (
    select(Version.id, Version.manifest_id, Manifest.size)
    .join(Node, Node.current_version_id == Version.id)
    .join(Manifest, Manifest.id == Version.manifest_id)
    .where(Node.id == bindparam("node_id"), access.visible_to(bindparam("user_id")))
)


def _current(session: Session, user_id: int, node_id: int) -> tuple[int, int, int]:
    """The node's current version, its manifest and size (one query; the live node
    and the target's checks come again in the commit)."""
    row = session.execute(_CURRENT, {"node_id": node_id, "user_id": user_id}).one_or_none()
    if row is None:  # not the user's, a folder, or no version: the precise error
        manifest(session, access.principal(user_id), NodeRef.by_id(node_id), None)
        raise NotFound(f"node {node_id} has no version to patch")
    version_id, manifest_id, size = row
    return int(version_id), int(manifest_id), int(size)


PLAN_MARGIN = 2 * MAX_CHUNK
"""The window a patch is planned over reaches this far past its last change: the
re-cut meets the base's cuts again within a chunk or two of it almost always (if
not, the plan is made again over every chunk)."""


@dataclass(frozen=True)
class _Window:
    """Base chunks a patch is planned over: entries ``first_index`` on of the base's
    manifest (with their offsets in the file); the walk starts where the first one
    does, goes on to at least ``stop``, and may read a chunk's worth beyond it."""

    first_index: int
    chunks: list[ChunkRef]
    stop: int

    @property
    def start(self) -> int:
        return self.chunks[0].offset if self.chunks else 0


def _window(session: Session, listing: list[Listed], base_size: int, patch: Patch) -> _Window:
    """The base's segments around the patch: from the one holding the byte before the
    first change (the new file is cut where that segment starts) to ``PLAN_MARGIN``
    past the last change (through the end if the size changes), and a chunk's worth
    more to read."""
    firsts = [offset for offset, _ in patch.ranges[:1]]
    if patch.size != base_size:
        firsts.append(min(patch.size, base_size))
    if not firsts or not listing:  # nothing changes, or nothing was there: all of it
        return _Window(0, segments.listed_entries(session, listing), patch.size)
    starts = [item.offset for item in listing]
    first = bisect.bisect_right(starts, max(0, min(firsts) - 1)) - 1
    if patch.size != base_size:
        last = len(listing)
        stop = patch.size
    else:
        offset, data = patch.ranges[-1]
        last = bisect.bisect_left(starts, offset + len(data) + PLAN_MARGIN)
        stop = listing[last - 1].offset + listing[last - 1].size
        if last == len(listing):
            stop = patch.size
    read_to = stop + MAX_CHUNK + 2
    while last < len(listing) and listing[last - 1].offset + listing[last - 1].size < read_to:
        last += 1
    chunks = segments.listed_entries(session, listing[first:last])
    return _Window(listing[first].first_chunk, chunks, stop)


def _plan(
    backend: Backend, window: _Window, base_size: int, patch: Patch, label: str
) -> tuple[Splice, list[ChunkRef], dict[ChunkHash, bytes | memoryview]] | None:
    """The splice of the base's manifest that makes the new content, its new entries
    and the bytes of the chunks the base lacks; None if the walk left the window."""
    content = _PatchedContent(backend, window.chunks, base_size, patch, label)
    try:
        planned = deltaplan.plan(
            patch.size, window.chunks, base_size, content.changed, content.read,
            start=window.start, stop=window.stop,
        )  # fmt: skip
    except _OutsideWindow:
        return None
    last = planned.chunks[-1] if planned.chunks else None
    reached = window.start if last is None else last.offset + last.length
    if reached == patch.size:  # the new file's end: every base chunk from the start goes
        covered = window.chunks
    else:
        ends = [chunk.offset + chunk.length for chunk in window.chunks]
        taken = bisect.bisect_left(ends, reached)
        if taken == len(ends) or ends[taken] != reached:
            return None  # ended off the base's cuts: not back in step yet
        covered = window.chunks[: taken + 1]
    head, tail, replacement = deltaplan.splice(covered, planned.chunks)
    fresh: dict[ChunkHash, bytes | memoryview] = {
        chunk.hash: content.read(chunk.offset, chunk.length) for chunk in planned.fresh
    }
    splice = Splice(window.first_index + head, window.first_index + tail)
    return splice, replacement, fresh


class _OutsideWindow(Exception):
    """The walk read base bytes outside the window's chunks."""


class _PatchedContent:
    """The bytes of the new content: the base's (verified as read), the patch over them."""

    def __init__(
        self,
        backend: Backend,
        chunks: list[ChunkRef],
        base_size: int,
        patch: Patch,
        label: str,
    ) -> None:
        self.base = ContentReader(backend.store, chunks, base_size, label)
        self.base_size = base_size
        # The base bytes the chunks hold (a window of the file, or all of it).
        self.low = chunks[0].offset if chunks else 0
        self.high = chunks[-1].offset + chunks[-1].length if chunks else 0
        self.patch = patch
        self.changed = _Changed(patch, base_size)
        self._offsets = [offset for offset, _ in patch.ranges]
        self._last: tuple[int, memoryview] = (-1, memoryview(b""))

    def read(self, offset: int, length: int) -> memoryview:
        end = min(offset + length, self.patch.size)
        if end <= offset:
            return memoryview(b"")
        last_offset, last = self._last
        if offset == last_offset and end - offset <= len(last):
            return last[: end - offset]  # a fresh chunk, stored after the plan cut it
        if offset < min(end, self.base_size) and (
            offset < self.low or min(end, self.base_size) > self.high
        ):
            raise _OutsideWindow(f"base bytes {offset} to {end} are outside the window")
        out = bytearray(end - offset)  # zeros past the base's end
        view = memoryview(out)
        position = offset
        self.base.seek(position)
        while position < min(end, self.base_size):
            count = self.base.readinto(view[position - offset : min(end, self.base_size) - offset])
            position += count
        first = max(0, bisect.bisect_right(self._offsets, offset) - 1)
        for at, data in self.patch.ranges[first:]:
            if at >= end:
                break
            lo, hi = max(at, offset), min(at + len(data), end)
            if lo < hi:
                out[lo - offset : hi - offset] = data[lo - at : hi - at]
        self._last = (offset, view)
        return view
