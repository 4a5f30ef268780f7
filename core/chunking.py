"""Content-defined chunking (FastCDC) and chunk naming (SHA-256).

Boundaries depend on content only, so inserting bytes into a file changes
the chunks around the edit and nothing else; identical chunks get identical
names wherever they occur, which is all dedup needs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import BinaryIO

from pyfastcdc import FastCDC

from core.ids import ChunkHash

MIN_CHUNK = 256 * 1024
AVG_CHUNK = 1024 * 1024
MAX_CHUNK = 4 * 1024 * 1024

_CUTTER = FastCDC(AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)


def chunk_hash(data: bytes | memoryview) -> ChunkHash:
    """The name of a chunk: lower-case hex SHA-256 of its plaintext."""
    return ChunkHash(hashlib.sha256(data).hexdigest())


def cut_stream(stream: BinaryIO) -> Iterator[bytes]:
    """Yield the chunks of ``stream`` in order, as independent ``bytes`` objects.

    Memory stays bounded by pyfastcdc's read buffer plus the chunks the caller
    keeps. A new cutter per stream keeps this safe to call from several threads.
    """
    cutter = FastCDC(AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)
    for chunk in cutter.cut_stream(stream):
        yield bytes(chunk.data)


def cut_bytes(data: bytes) -> Iterator[bytes]:
    """Chunks of an in-memory buffer (same boundaries as ``cut_stream``)."""
    for chunk in _CUTTER.cut_buf(data):
        yield bytes(chunk.data)
