"""Page-aligned buffers for O_DIRECT writes, shared by the writing threads and
kept for reuse (fresh memory is costly to fault in on these machines). Used by
the local chunk store and by the mount's chunk cache."""

from __future__ import annotations

import contextlib
import mmap
import threading
from collections.abc import Iterator


class AlignedBuffers:
    """A pool of at least ``least``-byte buffers; ``fault_in`` touches each whole
    when it is made (a buffer touched only as far as the largest chunk its thread
    had written made the server's memory grow with file size)."""

    KEEP = 8

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
