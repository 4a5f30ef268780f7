"""The chunks of an edited file without reading all of it: a delta upload.

A working copy of an online-only file holds only the bytes written to it;
the rest is still its origin version's content, known by that version's
manifest. ``plan`` re-cuts only around the edits (``cdc.deltaplan``, the
same walk the server uses for a patch commit), reading the unchanged bytes
it needs from the origin's chunks through the cache: a 1-byte edit in a
1 GiB file usually reads just the one chunk it lands in. ``splice`` turns
the result into the edit of the origin's chunk list that a splice commit
sends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from cdc.chunking import ChunkRef
from cdc.deltaplan import SourceChanged
from cdc.deltaplan import plan as plan_cuts
from cdc.deltaplan import splice as splice_chunks
from fusemount.apirecords import ChunkSpan
from fusemount.errors import FileChanged
from fusemount.extents import Extents

Content = Callable[[int, int], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Planned:
    """The new file's chunks, and which of them the origin did not have."""

    pieces: list[ChunkRef]
    fresh: list[ChunkRef]


async def plan(
    size: int, origin: tuple[ChunkSpan, ...], origin_size: int, changed: Extents, read: Content
) -> Planned:
    """The chunks of a file of ``size`` bytes whose bytes in ``changed`` are new and
    whose others are the origin's (a version of ``origin_size`` bytes cut into
    ``origin``); ``read(offset, length)`` gives the new file's bytes. The walk and
    its cutting run on a worker thread; its reads come back to trio. ``FileChanged``
    when the file shrinks under the walk (a read comes back short)."""

    def read_here(offset: int, length: int) -> bytes:
        return trio.from_thread.run(read, offset, length)

    try:
        planned = await trio.to_thread.run_sync(
            plan_cuts, size, origin, origin_size, changed, read_here
        )
    except SourceChanged as exc:
        raise FileChanged(str(exc)) from None
    return Planned(planned.chunks, planned.fresh)


def splice(
    origin: Sequence[ChunkSpan], pieces: Sequence[ChunkRef]
) -> tuple[int, int, list[ChunkRef]]:
    """The new chunk list as an edit of the origin's: (start, end, replacement), the
    origin's entries ``start`` to ``end`` (exclusive) replaced by ``replacement``."""
    return splice_chunks(origin, pieces)
