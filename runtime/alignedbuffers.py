"""Page-aligned buffers for O_DIRECT writes, shared by the writing threads and
kept for reuse (fresh memory is costly to fault in on these machines), and the
padded write itself. Used by the local chunk store and by the mount's chunk
cache."""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
from collections.abc import Iterator


class AlignedBuffers:
    """A pool of at least ``least``-byte buffers; ``fault_in`` touches each whole
    when it is made (a buffer touched only as far as the largest chunk its thread
    had written made the server's memory grow with file size)."""

    KEEP = 8
    BLOCK = 4096  # O_DIRECT writes whole blocks from block-aligned memory

    def __init__(self, least: int, *, fault_in: bool = False) -> None:
        self._least = least
        self._fault_in = fault_in
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def take(self, size: int) -> Iterator[mmap.mmap]:
        with self._lock:
            buffer = self._free.pop() if self._free else None
        if buffer is None or len(buffer) < size:
            buffer = mmap.mmap(-1, max(size, self._least))
            if self._fault_in:
                buffer.write(bytes(len(buffer)))
        try:
            yield buffer
        finally:
            with self._lock:
                if len(self._free) < self.KEEP:
                    self._free.append(buffer)

    def write(self, fd: int, data: bytes | memoryview) -> None:
        """Write ``data`` at the start of ``fd`` (opened with O_DIRECT): copied into
        a buffer, padded with zeros to whole blocks, written, then truncated back."""
        size = len(data)
        padded = -(-size // self.BLOCK) * self.BLOCK
        with self.take(padded) as buffer:
            buffer[:size] = data
            buffer[size:padded] = bytes(padded - size)
            with memoryview(buffer)[:padded] as view:
                written = 0
                while written < padded:
                    written += os.write(fd, view[written:])
        os.ftruncate(fd, size)
