"""A batch of chunks in one reusable arena: the writer's bounded chunk memory.

The writer copies each chunk it cuts into the current arena, framed with
``chunkcodec.HEADER`` spare bytes before it (so a chunk stored raw reaches the
store without another copy), and starts its SHA-256 on the worker pool at
once. A batch is full when the next chunk does not fit; its arena is reused
once the batch is stored. Arenas are anonymous mmaps: the kernel zeroes their
pages lazily, so a small file touches only the pages it uses, and a reused
arena costs no page faults.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from concurrent.futures import Executor, Future

from cdc.chunking import MAX_CHUNK, MIN_CHUNK, chunk_hash
from core.chunkcodec import HEADER
from core.ids import ChunkHash

ARENA_BYTES = 8 * 1024 * 1024
assert ARENA_BYTES >= HEADER + MAX_CHUNK


class ChunkBatch:
    """Chunks framed back to back in one arena, with their SHA-256s under way."""

    def __init__(self) -> None:
        self._arena = memoryview(mmap.mmap(-1, ARENA_BYTES))
        self.frames: list[memoryview] = []
        self._hashes: list[Future[ChunkHash] | None] = []
        self._used = 0
        self.size = 0
        """Plaintext bytes in the batch."""

    def add(self, data: memoryview, hasher: Executor) -> bool:
        """Copy ``data`` in and start hashing it; False (and nothing done) if it does not fit.

        A chunk of at most ``MIN_CHUNK`` bytes (a small file, or the tail of a
        large one) is hashed when asked for: not worth a trip through the pool.
        """
        end = self._used + HEADER + len(data)
        if end > len(self._arena):
            return False
        framed = self._arena[self._used : end]
        framed[HEADER:] = data
        self.frames.append(framed)
        self._hashes.append(
            hasher.submit(chunk_hash, framed[HEADER:]) if len(data) > MIN_CHUNK else None
        )
        self._used = end
        self.size += len(data)
        return True

    def chunks(self) -> Iterator[memoryview]:
        """The plaintext of each chunk, in order."""
        return (framed[HEADER:] for framed in self.frames)

    def hashes(self) -> list[ChunkHash]:
        """Each chunk's name, in order (waits for the ones under way)."""
        return [
            future.result() if future is not None else chunk_hash(framed[HEADER:])
            for future, framed in zip(self._hashes, self.frames, strict=True)
        ]

    def clear(self) -> None:
        """Empty the batch for reuse (once nothing reads its chunks any more)."""
        for future in self._hashes:
            if future is not None:
                future.cancel()
        self.frames.clear()
        self._hashes.clear()
        self._used = 0
        self.size = 0
