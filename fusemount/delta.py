"""The chunks of an edited file without reading all of it: a delta upload.

A working copy of an online-only file holds only the bytes written to it;
the rest is still its origin version's content, known by that version's
manifest. Chunk boundaries are content-defined (FastCDC: where a chunk ends
depends only on the bytes since it began), so a chunk of the origin that
lies wholly in unchanged bytes, and starts where the new file has a chunk
boundary too, is a chunk of the new file as well, by name. ``plan`` walks
the file: it takes such chunks by name, and cuts afresh only from the last
boundary before changed bytes until it is back on a boundary of the origin
with unchanged bytes ahead. Only the bytes of the chunks it re-cuts are read
(changed ones from the working copy, unchanged ones from the origin's chunks
through the cache), so a 1-byte edit in a 1 GiB file reads a few MiB, and
usually just the one chunk it lands in (see ``_kept_end``).

The result is exactly the cut of the whole new content (a test keeps it so),
so the server, the mount and every later edit find the same chunks.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio
from pyfastcdc import FastCDC

from fusemount.chunker import AVG_CHUNK, MAX_CHUNK, MIN_CHUNK, Piece
from fusemount.extents import Extents
from fusemount.records import ChunkHash, ChunkSpan

Content = Callable[[int, int], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Planned:
    """The new file's chunks, and which of them the origin did not have."""

    pieces: list[Piece]
    fresh: list[Piece]


async def plan(
    size: int, origin: tuple[ChunkSpan, ...], origin_size: int, changed: Extents, read: Content
) -> Planned:
    """The chunks of a file of ``size`` bytes whose bytes in ``changed`` are new and
    whose others are the origin's (a version of ``origin_size`` bytes cut into
    ``origin``); ``read(offset, length)`` gives the new file's bytes."""
    starts = {span.offset: span for span in origin}
    ends = [span.end for span in origin]
    pieces: list[Piece] = []
    fresh: list[Piece] = []
    position = 0
    while position < size:
        span = starts.get(position)
        if span is not None and _unchanged(span, size, origin_size, changed):
            pieces.append(Piece(span.offset, span.length, span.hash))
            position = span.end
            continue
        kept_end = _kept_end(span, size, origin_size, changed)
        piece = await _next_cut(position, size, ends, kept_end, read)
        pieces.append(piece)
        fresh.append(piece)
        position += piece.length
    return Planned(pieces, fresh)


def _unchanged(span: ChunkSpan, size: int, origin_size: int, changed: Extents) -> bool:
    """Whether the origin's chunk is one of the new file's too (it starts on a cut)."""
    # A cut depends on the bytes before it and the one at it.
    if span.end > size or changed.touches(span.offset, span.end + 1):
        return False
    # The origin's last chunk ended because its file did: with more bytes after it
    # now, the cutter may not end it there.
    return span.end < origin_size or size == origin_size


# FastCDC's gear hash is 64 bits wide and shifts one bit per byte: whether it
# cuts at a position depends on that byte and the 63 before it, and on where
# the chunk began (the mask changes at the average size).
GEAR_WINDOW = 64


def _kept_end(span: ChunkSpan | None, size: int, origin_size: int, changed: Extents) -> int | None:
    """Where the origin's chunk at this position is sure to still have a cut, if it is:
    the new chunk begins where it did and the bytes its cut depends on are unchanged,
    so the cutter cuts there unless it now cuts earlier (in the changed bytes).
    Knowing that, the byte after it, in the next chunk, need not be fetched."""
    if span is None or span.end >= origin_size or span.end >= size:
        return None
    if changed.touches(span.end - GEAR_WINDOW + 1, span.end + 1):
        return None
    return span.end


async def _next_cut(
    position: int, size: int, ends: list[int], kept_end: int | None, read: Content
) -> Piece:
    """The chunk that starts at ``position`` (a cut of the new file). The bytes read
    end on the origin's chunk boundaries where they can, so that a cut that did not
    move costs the origin chunks up to it (and the byte after) and no more; a cut
    known to hold (``kept_end``) costs only the bytes before it."""
    if kept_end is not None:
        data = await read(position, kept_end - position)
        length, digest = await trio.to_thread.run_sync(_first_chunk, data)
        return Piece(position, length, digest)
    for end in _windows(position, size, ends):
        # A cut depends on the bytes before it and the one at it, and the cutter
        # looks at positions in pairs: two bytes more are read, so that it sees `end`.
        data = await read(position, min(end + 2, size) - position)
        length, digest = await trio.to_thread.run_sync(_first_chunk, data)
        if length <= end - position:
            return Piece(position, length, digest)
    raise AssertionError("the cutter cuts within its largest chunk size")


def _windows(position: int, size: int, ends: list[int]) -> list[int]:
    """Where to stop reading for the next cut: the origin's boundaries past the smallest
    chunk size, then the largest chunk size (a cut is always found by then)."""
    last = min(size, position + MAX_CHUNK)
    first = bisect.bisect_left(ends, position + MIN_CHUNK)
    stops = [end for end in ends[first : first + 8] if end < last]
    return [*stops, last]


def splice(origin: Sequence[ChunkSpan], pieces: Sequence[Piece]) -> tuple[int, int, list[Piece]]:
    """The new chunk list as an edit of the origin's: (start, end, replacement), the
    origin's entries ``start`` to ``end`` (exclusive) replaced by ``replacement``
    (what a splice commit sends instead of the whole list)."""

    def same(span: ChunkSpan, piece: Piece) -> bool:
        return span.hash == piece.hash and span.length == piece.length

    limit = min(len(origin), len(pieces))
    head = 0
    while head < limit and same(origin[head], pieces[head]):
        head += 1
    tail = 0
    while tail < limit - head and same(origin[-1 - tail], pieces[-1 - tail]):
        tail += 1
    return head, len(origin) - tail, list(pieces[head : len(pieces) - tail])


def _first_chunk(data: bytes) -> tuple[int, ChunkHash]:
    cutter = FastCDC(AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)
    first = next(iter(cutter.cut_buf(data)))
    length = first.length
    return length, ChunkHash(hashlib.sha256(memoryview(data)[:length]).hexdigest())
