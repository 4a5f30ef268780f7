"""A small edit of a file, sent as its changed bytes: the patch commit.

A client that holds only part of a file (the mount's online-only files) and
changed a few bytes of it sends just those bytes, where they go and the new
size. The server re-cuts the chunks around them from the base version's
chunks, which it has (``core.deltaplan``: usually the one chunk the edit
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
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from core import deltaplan, manifestwrite
from core.backend import Backend
from core.commit import WriteTarget
from core.errors import InvalidRequest, VersionConflict
from core.manifestwrite import Splice
from core.nodes import manifest
from core.reader import ContentReader
from core.records import ChunkRef, NodeState

MAX_RANGES = 1024
MAX_PATCH_BYTES = 16 * 1024 * 1024
"""The most new bytes one patch may carry: beyond a few MiB, chunks are cheaper."""


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


def commit_patch(backend: Backend, target: WriteTarget, patch: Patch) -> tuple[NodeState, bool]:
    """Commit the base version with ``patch`` applied as the file's new version;
    return the file (and False: a patch never creates one)."""
    check(patch)
    if target.node_id is None or target.base_version_id is None:
        raise InvalidRequest("a patch edits a version: give node_id and base_version_id")
    with backend.db.read() as session:
        base = manifest(session, target.user_id, target.node_id, None)
    if base.version.id != target.base_version_id:
        raise VersionConflict(
            f"node {target.node_id} changed: base version {target.base_version_id}, "
            f"current {base.version.id}",
            base.version.id,
            target.node_id,
        )
    content = _PatchedContent(backend, base.chunks, base.version.size, patch, target.label)
    planned = deltaplan.plan(
        patch.size, base.chunks, base.version.size, content.changed, content.read
    )
    start, end, replacement = deltaplan.splice(base.chunks, planned.chunks)
    return manifestwrite.commit_manifest(
        backend,
        target,
        [(chunk.hash, chunk.length) for chunk in replacement],
        patch.size,
        splice=Splice(start, end),
        new_chunks={c.hash: content.read(c.offset, c.length) for c in planned.fresh},
    )


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
