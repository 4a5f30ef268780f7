"""The stored form of a chunk: a 4-byte header, then the payload.

Header: ``b"DG"``, format version 1, codec (0 = raw, 1 = zstd). zstd is used
only when it makes the chunk smaller. Decoding always re-hashes the
plaintext against the chunk's name, so a damaged chunk raises ChunkCorrupt
instead of reaching a reader.
"""

from __future__ import annotations

import hashlib
import threading

import zstandard

from core.errors import ChunkCorrupt
from core.ids import ChunkHash

_MAGIC = b"DG\x01"
_RAW = 0
_ZSTD = 1
_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    # zstd (de)compressor objects are not thread-safe: keep one per thread.
    key = f"c{level}"
    compressor = getattr(_local, key, None)
    if compressor is None:
        compressor = zstandard.ZstdCompressor(level=level)
        setattr(_local, key, compressor)
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor = getattr(_local, "d", None)
    if decompressor is None:
        decompressor = _local.d = zstandard.ZstdDecompressor()
    return decompressor


_PROBE = 64 * 1024
HEADER = 4
"""Bytes of header before a stored chunk's payload."""


def encode_chunk(data: bytes, level: int = 1) -> bytes:
    """The stored form of ``data``: compressed if that saves space, raw otherwise."""
    compressed = _compressed(data, level)
    if compressed is not None:
        return _MAGIC + bytes([_ZSTD]) + compressed
    return _MAGIC + bytes([_RAW]) + data


def frame(data: bytes | memoryview) -> memoryview:
    """``data`` with ``HEADER`` spare bytes before it, ready for ``encode_frame``."""
    framed = bytearray(HEADER + len(data))
    framed[HEADER:] = data
    return memoryview(framed)


def encode_frame(framed: memoryview, level: int = 1) -> bytes | memoryview:
    """The stored form of ``framed[HEADER:]``, whose first ``HEADER`` bytes are spare.

    A chunk stored raw gets its header written into them and is returned as a
    view of ``framed``: incompressible data is never copied on its way to the store.
    """
    compressed = _compressed(framed[HEADER:], level)
    if compressed is not None:
        return _MAGIC + bytes([_ZSTD]) + compressed
    framed[:HEADER] = _MAGIC + bytes([_RAW])
    return framed


def _compressed(data: bytes | memoryview, level: int) -> bytes | None:
    """``data`` compressed, or None when that does not make it smaller.

    A 64 KiB probe decides first, so incompressible data (media, archives,
    encrypted files) costs almost nothing to store.
    """
    compressor = _compressor(level)
    if len(data) > 4 * _PROBE and len(compressor.compress(data[:_PROBE])) > _PROBE * 0.97:
        return None
    compressed = compressor.compress(data)
    return compressed if len(compressed) < len(data) else None


def decode_chunk(stored: bytes, expected: ChunkHash, *, verify: bool = True) -> bytes:
    """The plaintext of a stored chunk, verified against its name (unless ``verify``
    is False: only for a reader that verifies the bytes itself, see chunkaccess)."""
    return decode_parts(stored[:HEADER], memoryview(stored)[HEADER:], expected, verify=verify)


def decode_parts(
    header: bytes, payload: bytes | memoryview, expected: ChunkHash, *, verify: bool = True
) -> bytes:
    """``decode_chunk`` of a stored chunk given as its header and its payload (see
    ``ChunkStore.get_split``). A raw payload that is ``bytes`` is returned uncopied."""
    if len(header) < HEADER or header[:3] != _MAGIC:
        raise ChunkCorrupt(f"chunk {expected} has no valid header")
    codec = header[3]
    if codec == _RAW:
        data = payload if isinstance(payload, bytes) else bytes(payload)
    elif codec == _ZSTD:
        try:
            data = _decompressor().decompress(payload)
        except zstandard.ZstdError as exc:
            raise ChunkCorrupt(f"chunk {expected} does not decompress: {exc}") from None
    else:
        raise ChunkCorrupt(f"chunk {expected} has unknown codec {codec}")
    if verify and hashlib.sha256(data).hexdigest() != expected:
        raise ChunkCorrupt(f"chunk {expected} does not match its hash")
    return data
