"""Content-defined chunking for uploads: FastCDC with the server's parameters
(256 KiB / 1 MiB / 4 MiB, as ``core.chunking``; a test keeps the two equal),
so a file the mount uploads is cut exactly where the server would cut it and
unchanged chunks are found again by name. The mount may not import the
server's core, hence this twin.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from pyfastcdc import FastCDC

from fusemount.records import ChunkHash

MIN_CHUNK = 256 * 1024
AVG_CHUNK = 1024 * 1024
MAX_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Piece:
    """One chunk of a local file: where it is and its name."""

    offset: int
    length: int
    hash: ChunkHash


def cut_file(
    stream: BinaryIO, on_batch: Callable[[list[Piece]], None] | None = None, batch: int = 32
) -> tuple[list[Piece], str]:
    """The chunks of ``stream`` from its start, and the whole content's SHA-256
    (one pass; only one chunk is in memory at a time). ``on_batch`` is given the
    pieces ``batch`` at a time as the cut goes on (the last batch may be shorter),
    so that they can be sent while the rest is cut."""
    cutter = FastCDC(AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)
    whole = hashlib.sha256()
    pieces: list[Piece] = []
    offset = sent = 0
    for chunk in cutter.cut_stream(stream):
        data = chunk.data
        whole.update(data)
        pieces.append(Piece(offset, len(data), ChunkHash(hashlib.sha256(data).hexdigest())))
        offset += len(data)
        if on_batch is not None and len(pieces) - sent >= batch:
            on_batch(pieces[sent:])
            sent = len(pieces)
    if on_batch is not None and len(pieces) > sent:
        on_batch(pieces[sent:])
    return pieces, whole.hexdigest()
