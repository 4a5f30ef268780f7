"""Reading file content: a seekable stream over a manifest.

Offsets map to chunks by bisecting the manifest, so a read (or an HTTP
Range) at any offset fetches only the chunks that cover it. Every chunk is
verified against its hash on the way out; a damaged or missing chunk raises
an error that names the file, and no wrong byte is ever returned.
"""

from __future__ import annotations

import bisect
import io
from collections.abc import Sequence

from core.chunkcodec import decode_chunk
from core.errors import ChunkCorrupt, ChunkMissing
from core.records import ChunkRef
from core.store import ChunkStore


class ContentReader(io.RawIOBase):
    """A read-only, seekable binary stream of one version's bytes."""

    def __init__(self, store: ChunkStore, refs: Sequence[ChunkRef], size: int, label: str) -> None:
        super().__init__()
        self.store = store
        self.refs = refs
        self.size = size
        self.label = label
        self._starts = [ref.offset for ref in refs]
        self._pos = 0
        self._cached_index = -1
        self._cached = b""
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

    def _chunk(self, index: int) -> bytes:
        if index != self._cached_index:
            ref = self.refs[index]
            try:
                data = decode_chunk(self.store.get(ref.hash), ref.hash)
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
            self.chunks_fetched += 1
            self._cached_index, self._cached = index, data
        return self._cached

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self.size - self._pos
        end = min(self.size, self._pos + size)
        parts: list[bytes] = []
        while self._pos < end:
            index = bisect.bisect_right(self._starts, self._pos) - 1
            ref = self.refs[index]
            data = self._chunk(index)
            start = self._pos - ref.offset
            stop = min(ref.length, end - ref.offset)
            parts.append(data[start:stop] if (start, stop) != (0, ref.length) else data)
            self._pos += stop - start
        return b"".join(parts) if len(parts) != 1 else parts[0]

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)
