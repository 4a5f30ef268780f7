"""Reading file content: a seekable stream over a manifest.

Offsets map to chunks by bisecting the manifest, so a read (or an HTTP
Range) at any offset fetches only the chunks that cover it. Every chunk is
verified against its hash on the way out; a damaged or missing chunk raises
an error that names the file, and no wrong byte is ever returned.

A reader that goes through the file in order (two chunks in a row) gets
read-ahead: the next ``READ_AHEAD`` chunks are fetched and verified on the
worker threads while the current one is sent (reading and hashing release
the GIL), so a download overlaps disk or S3 latency with hashing.
"""

from __future__ import annotations

import bisect
import io
from collections.abc import Sequence
from concurrent.futures import Executor, Future

from cdc.chunking import ChunkRef
from core.chunkcodec import HEADER, decode_parts
from core.errors import ChunkCorrupt, ChunkMissing
from core.store import ChunkStore

READ_AHEAD = 2
PREFETCH = 8
"""Chunks beyond the read-ahead that the store is told will be read soon."""


class ContentReader(io.RawIOBase):
    """A read-only, seekable binary stream of one version's bytes.

    ``read`` stops at the end of a chunk (a short read, as raw streams may),
    so a caller reading in blocks at least as large as a chunk gets each
    chunk whole, without copying it.
    """

    def __init__(
        self,
        store: ChunkStore,
        refs: Sequence[ChunkRef],
        size: int,
        label: str,
        workers: Executor | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.refs = refs
        self.size = size
        self.label = label
        self.workers = workers
        self._starts = [ref.offset for ref in refs]
        self._pos = 0
        self._cached_index = -1
        self._cached = b""
        self._ahead: dict[int, Future[bytes]] = {}
        self._hinted = 0  # chunks below this index were passed to store.prefetch
        self.chunks_fetched = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def _load(self, index: int) -> bytes:
        ref = self.refs[index]
        try:
            data = decode_parts(*self.store.get_split(ref.hash, HEADER), ref.hash)
        except ChunkCorrupt as exc:
            raise ChunkCorrupt(
                f"{self.label}: damaged data at offset {ref.offset}: {exc}"
            ) from None
        except ChunkMissing as exc:
            raise ChunkMissing(
                f"{self.label}: missing data at offset {ref.offset}: {exc}"
            ) from None
        if len(data) != ref.length:
            raise ChunkCorrupt(f"{self.label}: chunk {ref.hash} has the wrong length")
        return data

    def _chunk(self, index: int) -> bytes:
        if index == self._cached_index:
            return self._cached
        sequential = index == self._cached_index + 1 and index > 0
        if not sequential:
            self._hinted = 0  # a jump: hint again from wherever reading goes on
        ahead = self._ahead.pop(index, None)
        data = ahead.result() if ahead is not None else self._load(index)
        self.chunks_fetched += 1
        self._cached_index, self._cached = index, data
        for stale in [i for i in self._ahead if i < index or i > index + READ_AHEAD]:
            self._ahead.pop(stale).cancel()
        if sequential and self.workers is not None:
            for following in range(index + 1, min(index + 1 + READ_AHEAD, len(self.refs))):
                if following not in self._ahead:
                    self._ahead[following] = self.workers.submit(self._load, following)
            self._hint(index + 1 + READ_AHEAD)
        return data

    def _hint(self, start: int) -> None:
        """Tell the store which chunks come after the read-ahead."""
        stop = min(start + PREFETCH, len(self.refs))
        start = max(start, self._hinted)
        if start < stop:
            self.store.prefetch([ref.hash for ref in self.refs[start:stop]])
            self._hinted = stop

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes, stopping at the end of the chunk that holds the position."""
        if size is None or size < 0:
            return self.readall()
        if size == 0 or self._pos >= self.size:
            return b""
        index = bisect.bisect_right(self._starts, self._pos) - 1
        ref = self.refs[index]
        data = self._chunk(index)
        start = self._pos - ref.offset
        stop = min(ref.length, start + size, self.size - ref.offset)
        self._pos += stop - start
        return data if (start, stop) == (0, ref.length) else data[start:stop]

    def readall(self) -> bytes:
        parts = []
        while block := self.read(self.size - self._pos):
            parts.append(block)
        return b"".join(parts)

    def close(self) -> None:
        for pending in self._ahead.values():
            pending.cancel()
        self._ahead.clear()
        super().close()

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
