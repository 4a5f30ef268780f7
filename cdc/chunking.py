"""Content-defined chunking (FastCDC) and chunk naming (SHA-256).

Boundaries depend on content only, so inserting bytes into a file changes
the chunks around the edit and nothing else; identical chunks get identical
names wherever they occur, which is all dedup needs. The server and the
mount cut with this one module, so a file the mount uploads is cut exactly
where the server would cut it and unchanged chunks are found again by name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, NamedTuple, NewType

from pyfastcdc import FastCDC

ChunkHash = NewType("ChunkHash", str)
"""Lower-case hex SHA-256 of a chunk's plaintext."""


class ChunkRef(NamedTuple):
    """One entry of a manifest: ``length`` bytes at ``offset`` are chunk ``hash``.
    (A named tuple: a 1 GiB file's manifest makes ~850 of them per commit and per
    read, and a frozen dataclass costs more to build.)"""

    offset: int
    length: int
    hash: ChunkHash


MIN_CHUNK = 256 * 1024
AVG_CHUNK = 1024 * 1024
MAX_CHUNK = 4 * 1024 * 1024

_CUTTER = FastCDC(AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)


def chunk_hash(data: bytes | memoryview) -> ChunkHash:
    """The name of a chunk: lower-case hex SHA-256 of its plaintext."""
    return ChunkHash(hashlib.sha256(data).hexdigest())


def cut_stream(stream: BinaryIO) -> Iterator[bytes]:
    """Yield the chunks of ``stream`` in order, as independent ``bytes`` objects."""
    for view in cut_views(stream):
        yield bytes(view)


def cut_views(stream: BinaryIO) -> Iterator[memoryview]:
    """Yield the chunks of ``stream`` in order, as views that stay valid only until
    the next one is asked for (copy what you keep).

    Memory stays bounded by pyfastcdc's read buffer. A new cutter per stream
    keeps this safe to call from several threads. A stream of at most
    ``MIN_CHUNK`` bytes is one chunk whatever its content, so it is read whole
    here: setting up pyfastcdc's stream buffer costs more than the rest of a
    small file's trip.
    """
    readinto = _readinto_of(stream)
    head = memoryview(bytearray(MIN_CHUNK + 1))
    filled = 0
    while filled < len(head):
        n = readinto(head[filled:])
        if not n:
            break
        filled += n
    if filled <= MIN_CHUNK:
        if filled:
            yield head[:filled]
        return
    cutter = FastCDC(AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)
    for chunk in cutter.cut_stream(_Prefixed(head, readinto)):
        yield chunk.data


class _Prefixed:
    """The bytes of ``head``, then the rest of a stream (as ``readinto``)."""

    def __init__(self, head: memoryview, rest: Callable[[memoryview], int]) -> None:
        self._head = head
        self._rest = rest

    def readinto(self, buffer: memoryview) -> int:
        if not self._head:
            return self._rest(buffer)
        n = min(len(buffer), len(self._head))
        buffer[:n] = self._head[:n]
        self._head = self._head[n:]
        return n


def _readinto_of(stream: BinaryIO) -> Callable[[memoryview], int]:
    """``stream.readinto`` (0 at the end), or one made of its ``read``."""
    method = getattr(stream, "readinto", None)
    if callable(method):
        return lambda buffer: method(buffer) or 0

    def readinto(buffer: memoryview) -> int:
        data = stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    return readinto


def cut_bytes(data: bytes) -> Iterator[bytes]:
    """Chunks of an in-memory buffer (same boundaries as ``cut_stream``)."""
    for chunk in _CUTTER.cut_buf(data):
        yield bytes(chunk.data)


def cut_file(
    stream: BinaryIO, on_batch: Callable[[list[ChunkRef]], None] | None = None, batch: int = 32
) -> tuple[list[ChunkRef], str]:
    """The chunks of ``stream`` from its start, and the whole content's SHA-256
    (one pass; only one chunk is in memory at a time). ``on_batch`` is given the
    chunks ``batch`` at a time as the cut goes on (the last batch may be shorter),
    so that they can be sent while the rest is cut."""
    whole = hashlib.sha256()
    refs: list[ChunkRef] = []
    offset = sent = 0
    for data in cut_views(stream):
        whole.update(data)
        refs.append(ChunkRef(offset, len(data), chunk_hash(data)))
        offset += len(data)
        if on_batch is not None and len(refs) - sent >= batch:
            on_batch(refs[sent:])
            sent = len(refs)
    if on_batch is not None and len(refs) > sent:
        on_batch(refs[sent:])
    return refs, whole.hexdigest()
