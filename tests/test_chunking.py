"""Content-defined chunking: sizes within bounds, boundaries that follow content."""

from __future__ import annotations

import io
import random

from core.chunking import MAX_CHUNK, MIN_CHUNK, chunk_hash, cut_bytes, cut_stream


def test_chunks_respect_the_size_bounds_and_rebuild_the_input() -> None:
    data = random.Random(7).randbytes(20 * 1024 * 1024)
    chunks = list(cut_stream(io.BytesIO(data)))
    assert b"".join(chunks) == data
    assert all(MIN_CHUNK <= len(c) <= MAX_CHUNK for c in chunks[:-1])
    assert chunks == list(cut_bytes(data))


def test_inserting_bytes_changes_at_most_two_chunks() -> None:
    data = random.Random(8).randbytes(32 * 1024 * 1024)
    middle = len(data) // 2
    edited = data[:middle] + b"!" * 100 + data[middle:]
    before = {chunk_hash(c) for c in cut_bytes(data)}
    after = [chunk_hash(c) for c in cut_bytes(edited)]
    assert sum(1 for h in after if h not in before) <= 2


def test_empty_input_has_no_chunks() -> None:
    assert list(cut_stream(io.BytesIO(b""))) == []
