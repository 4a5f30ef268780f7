"""The chunks of an edited file, re-cut only around its edits: the delta plan.

An edit of a file leaves most of its bytes as they were in the version it
started from (the *origin*). Chunk boundaries are content-defined (FastCDC:
where a chunk ends depends only on the bytes since it began), so a chunk of
the origin that lies wholly in unchanged bytes, and starts where the new
file has a chunk boundary too, is a chunk of the new file as well, by name.
``plan`` walks the file: it takes such chunks by name, and cuts afresh only
from the last boundary before changed bytes until it is back on a boundary
of the origin with unchanged bytes ahead. Only the bytes of the chunks it
re-cuts are read, so a 1-byte edit in a 1 GiB file reads a few MiB, and
usually just the one chunk it lands in (see ``_kept_end``).

The result is exactly the cut of the whole new content (tests keep it so), so
the server, the mount and every later edit find the same chunks. Two callers:
the mount's delta upload, whose reads fetch origin chunks from the server,
and the server's patch commit (``core.patch``), whose reads come from its
own store. This module needs nothing but the cutter, so the mount can use it
without the server's database and store code.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pyfastcdc import FastCDC

from cdc.chunking import AVG_CHUNK, MAX_CHUNK, MIN_CHUNK, ChunkHash, ChunkRef

Read = Callable[[int, int], bytes | memoryview]
"""``read(offset, length)``: the new file's bytes (length may run past its end)."""


class SourceChanged(ValueError):
    """``read`` gave fewer bytes than the file of ``size`` bytes holds there: the file
    changed (shrank) while it was planned, and the plan is void."""


class Span(Protocol):
    """One chunk of the origin: where it sits and its name."""

    @property
    def offset(self) -> int: ...

    @property
    def length(self) -> int: ...

    @property
    def hash(self) -> str: ...


class Changed(Protocol):
    """The offsets whose bytes are not the origin's (written, or past its end)."""

    def touches(self, start: int, end: int) -> bool:
        """Whether any offset of ``[start, end)`` is changed."""
        ...


@dataclass(frozen=True, slots=True)
class Planned:
    """The new file's chunks, and which of them the origin did not have."""

    chunks: list[ChunkRef]
    fresh: list[ChunkRef]


def plan(
    size: int,
    origin: Sequence[Span],
    origin_size: int,
    changed: Changed,
    read: Read,
    *,
    start: int = 0,
    stop: int | None = None,
) -> Planned:
    """The chunks of a file of ``size`` bytes whose bytes in ``changed`` are new and
    whose others are the origin's (a version of ``origin_size`` bytes cut into
    ``origin``, its chunks in order, end to end); ``read(offset, length)`` gives the
    new file's bytes. Raises ``SourceChanged`` when a read comes back shorter than
    ``size`` says it must be.

    ``start`` and ``stop`` plan a window only: from ``start`` (a boundary of the
    origin's chunks before the first changed byte, so the new file is cut there
    too) until at least ``stop``; ``origin`` may then hold only the chunks from
    ``start`` on. The walk ends where a chunk it takes ends, at or past ``stop``.
    """
    offsets = [span.offset for span in origin]
    ends = [span.offset + span.length for span in origin]
    chunks: list[ChunkRef] = []
    fresh: list[ChunkRef] = []
    position = start
    while position < (size if stop is None else stop):
        index = bisect.bisect_left(offsets, position)
        span = origin[index] if index < len(origin) and offsets[index] == position else None
        if span is not None:
            run_end = _unchanged_run(
                ends, index, start=position, size=size, origin_size=origin_size, changed=changed
            )
            if run_end > index:
                chunks.extend(
                    ChunkRef(s.offset, s.length, ChunkHash(s.hash)) for s in origin[index:run_end]
                )
                position = ends[run_end - 1]
                continue
        kept_end = _kept_end(span, size, origin_size, changed)
        piece = _next_cut(position, size, ends, kept_end, read)
        chunks.append(piece)
        fresh.append(piece)
        position += piece.length
    return Planned(chunks, fresh)


def _unchanged_run(
    ends: list[int], index: int, *, start: int, size: int, origin_size: int, changed: Changed
) -> int:
    """The end (exclusive index) of the run of origin chunks from ``index`` (which
    starts at ``start``, on a cut of the new file) that are chunks of the new file
    too. A bisection: the chunks lie end to end, so the run up to a chunk is
    unchanged if the bytes from the run's start to that chunk's end are, and a
    1-byte edit of a file of 850 chunks costs a few ``touches``, not a step each."""

    def unchanged_through(last: int) -> bool:
        end = ends[last]
        # A cut depends on the bytes before it and the one at it.
        if end > size or changed.touches(start, end + 1):
            return False
        # The origin's last chunk ended because its file did: with more bytes after it
        # now, the cutter may not end it there.
        return end < origin_size or size == origin_size

    low, high = index, len(ends)
    while low < high:
        middle = (low + high) // 2
        if unchanged_through(middle):
            low = middle + 1
        else:
            high = middle
    return low


# FastCDC's gear hash is 64 bits wide and shifts one bit per byte: whether it
# cuts at a position depends on that byte and the 63 before it, and on where
# the chunk began (the mask changes at the average size).
GEAR_WINDOW = 64


def _kept_end(span: Span | None, size: int, origin_size: int, changed: Changed) -> int | None:
    """Where the origin's chunk at this position is sure to still have a cut, if it is:
    the new chunk begins where it did and the bytes its cut depends on are unchanged,
    so the cutter cuts there unless it now cuts earlier (in the changed bytes).
    Knowing that, the byte after it, in the next chunk, need not be read."""
    if span is None:
        return None
    end = span.offset + span.length
    if end >= origin_size or end >= size or changed.touches(end - GEAR_WINDOW + 1, end + 1):
        return None
    return end


def _next_cut(
    position: int, size: int, ends: list[int], kept_end: int | None, read: Read
) -> ChunkRef:
    """The chunk that starts at ``position`` (a cut of the new file). The bytes read
    end on the origin's chunk boundaries where they can, so that a cut that did not
    move costs the origin chunks up to it (and the byte after) and no more; a cut
    known to hold (``kept_end``) costs only the bytes before it."""
    if kept_end is not None:
        return _first_chunk(position, _read_exactly(read, position, kept_end - position))
    for end in _windows(position, size, ends):
        # A cut depends on the bytes before it and the one at it, and the cutter
        # looks at positions in pairs: two bytes more are read, so that it sees `end`.
        data = _read_exactly(read, position, min(end + 2, size) - position)
        piece = _first_chunk(position, data)
        if piece.length <= end - position:
            return piece
    raise AssertionError("the cutter cuts within its largest chunk size")


def _read_exactly(read: Read, offset: int, length: int) -> bytes | memoryview:
    """``length`` (> 0) bytes at ``offset``, all inside the file; ``SourceChanged``
    when fewer come back (a cut of what did would not be the file's)."""
    data = read(offset, length)
    if len(data) < length:
        raise SourceChanged(
            f"{len(data)} bytes at offset {offset} where the file holds {length}: it changed"
        )
    return data


def _windows(position: int, size: int, ends: list[int]) -> list[int]:
    """Where to stop reading for the next cut: the origin's boundaries past the smallest
    chunk size, then the largest chunk size (a cut is always found by then)."""
    last = min(size, position + MAX_CHUNK)
    first = bisect.bisect_left(ends, position + MIN_CHUNK)
    stops = [end for end in ends[first : first + 8] if end < last]
    return [*stops, last]


def _first_chunk(position: int, data: bytes | memoryview) -> ChunkRef:
    cutter = FastCDC(AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)
    length = next(iter(cutter.cut_buf(data))).length
    digest = hashlib.sha256(memoryview(data)[:length]).hexdigest()
    return ChunkRef(position, length, ChunkHash(digest))


class Chunk(Protocol):
    @property
    def length(self) -> int: ...

    @property
    def hash(self) -> str: ...


C = TypeVar("C", bound=Chunk)


def splice(origin: Sequence[Chunk], chunks: Sequence[C]) -> tuple[int, int, list[C]]:
    """The new chunk list as an edit of the origin's: (start, end, replacement), the
    origin's entries ``start`` to ``end`` (exclusive) replaced by ``replacement``
    (what a splice commit names instead of the whole list)."""

    def same(old: Chunk, new: Chunk) -> bool:
        return old.hash == new.hash and old.length == new.length

    limit = min(len(origin), len(chunks))
    head = 0
    while head < limit and same(origin[head], chunks[head]):
        head += 1
    tail = 0
    while tail < limit - head and same(origin[-1 - tail], chunks[-1 - tail]):
        tail += 1
    return head, len(origin) - tail, list(chunks[head : len(chunks) - tail])
