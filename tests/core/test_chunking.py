"""Content-defined chunking: sizes within bounds, boundaries that follow content."""

from __future__ import annotations

import hashlib
import io
import random

from cdc.chunking import MAX_CHUNK, MIN_CHUNK, chunk_hash, cut_bytes, cut_file, cut_stream


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


class _Trickle:
    """A stream that hands out at most 1000 bytes per call, with ``read`` only."""

    def __init__(self, data: bytes) -> None:
        self.source = io.BytesIO(data)

    def read(self, size: int) -> bytes:
        return self.source.read(min(size, 1000))


def test_streams_around_the_minimum_chunk_size_cut_as_buffers_do() -> None:
    data = random.Random(9).randbytes(3 * MAX_CHUNK)
    for size in (1, MIN_CHUNK - 1, MIN_CHUNK, MIN_CHUNK + 1, 2 * MIN_CHUNK + 5, len(data)):
        expected = list(cut_bytes(data[:size]))
        assert list(cut_stream(io.BytesIO(data[:size]))) == expected
        assert list(cut_stream(_Trickle(data[:size]))) == expected  # type: ignore[arg-type]


def test_a_file_cut_in_batches_is_cut_as_a_buffer_is() -> None:
    """The mount's upload cut (``cut_file``) finds exactly the server's chunks."""
    data = random.Random(7).randbytes(9 * 1024 * 1024) + bytes(3 * 1024 * 1024)
    batches: list[int] = []
    pieces, whole = cut_file(io.BytesIO(data), lambda batch: batches.append(len(batch)), batch=4)
    assert sum(batches) == len(pieces) and all(n == 4 for n in batches[:-1])
    server = list(cut_bytes(data))
    assert [(p.length, str(p.hash)) for p in pieces] == [
        (len(c), str(chunk_hash(c))) for c in server
    ]
    offsets = [sum(len(c) for c in server[:i]) for i in range(len(server))]
    assert [p.offset for p in pieces] == offsets
    assert whole == hashlib.sha256(data).hexdigest()
