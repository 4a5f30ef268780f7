"""Writing a file: stream → FastCDC chunks → store → one commit transaction.

The pipeline: the calling thread cuts chunks into batches of ``BATCH``
(and feeds the whole-file SHA-256 to a thread of its own; a one-chunk
file skips it, its SHA-256 being the chunk's name); two storer
threads take batches, hash their chunks on the worker pool, and under the
shared collector lock touch the ones already known, store the others and
register them. The last batch is registered in the same transaction as the
commit, so a small file costs two transactions. Memory is bounded whatever
the file size: at most ``IN_FLIGHT`` batches and ``IN_FLIGHT_BYTES`` are
being stored, plus the two batches the calling thread holds.

The upload session, the quota reservation and the commit step itself are
``core.commit.PendingWrite`` (whose commit step the sync API's manifest
commit shares).
Nothing is visible until the commit; a failure anywhere before it leaves
the previous version intact, releases the quota reservation and leaves only
unreferenced chunks, which gc collects after the grace period.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from core import chunkrows
from core.backend import Backend
from core.chunking import chunk_hash, cut_stream
from core.commit import PendingWrite, UploadedContent, WriteTarget
from core.errors import DriveError, IncompleteUpload, StorageUnavailable
from core.records import ByteSource, ChunkRef, NodeInfo

BATCH = 4
IN_FLIGHT = 3
IN_FLIGHT_BYTES = 12 * 1024 * 1024
"""Chunks average ~1.25 MiB, so three batches are ~15 MiB; a run of large chunks
would put up to 48 MiB in flight, and the peaks grew the server's memory with
file size (a larger file meets longer runs)."""


class _GuardedStream:
    """Reads at most ``limit`` bytes; a broken source becomes IncompleteUpload."""

    def __init__(self, source: ByteSource, limit: int | None) -> None:
        self.source = source
        self.remaining = limit
        # Only files, buffers and raw streams with a readinto of their own get the
        # zero-copy path: a readinto inherited by a read()-only class may not call
        # its read().
        self._source_readinto: Callable[[memoryview], int | None] | None = None
        if isinstance(source, io.BufferedIOBase | io.FileIO) or (
            isinstance(source, io.RawIOBase) and type(source).readinto is not io.RawIOBase.readinto
        ):
            self._source_readinto = source.readinto

    def readinto(self, buffer: memoryview) -> int:
        want = len(buffer) if self.remaining is None else min(len(buffer), self.remaining)
        if want == 0:
            return 0
        try:
            if self._source_readinto is not None:  # files and BytesIO: no copy
                n = self._source_readinto(buffer[:want]) or 0
            else:
                data = self.source.read(want)
                n = len(data)
                buffer[:n] = data
        except DriveError:
            raise
        except Exception as exc:
            raise IncompleteUpload(f"the upload stream broke: {exc}") from exc
        if self.remaining is not None:
            self.remaining -= n
        return n


def _batches(stream: _GuardedStream) -> Iterator[list[bytes]]:
    """The stream's chunks in lists of BATCH."""
    batch: list[bytes] = []
    for data in cut_stream(stream):  # type: ignore[arg-type]
        batch.append(data)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class Upload:
    """One streamed write: cut, hash and store batches, then commit the last one."""

    def __init__(self, backend: Backend, target: WriteTarget) -> None:
        self.backend = backend
        self.pending = PendingWrite(backend, target)
        self.content = UploadedContent()
        self.whole = hashlib.sha256()
        self.cut_bytes = 0  # bytes handed to storers so far
        self._last_batch: list[bytes] = []

    def run(self, stream: ByteSource, expected_size: int | None) -> NodeInfo:
        batches = _batches(_GuardedStream(stream, expected_size))
        current = next(batches, [])
        following = next(batches, None)
        if following is not None:
            self._store_middle(current, following, batches)
            current = self._last_batch
        size = self.cut_bytes + sum(map(len, current))
        if expected_size is not None and size != expected_size:
            raise IncompleteUpload(f"the upload ended after {size} of {expected_size} bytes")
        if self.cut_bytes or len(current) > 1:
            # A one-chunk file's SHA-256 is its chunk's name: _store sets it then.
            self._hash_whole(current)
            self.content.sha256 = self.whole.hexdigest()
        elif not current:
            self.content.sha256 = self.whole.hexdigest()
        _, result = self._store(current, self.cut_bytes, last=True)
        assert result is not None
        return result

    def _store_middle(
        self, current: list[bytes], following: list[bytes] | None, rest: Iterator[list[bytes]]
    ) -> None:
        """Store every batch but the last; keep the last in ``_last_batch``.

        The calling thread cuts while up to ``IN_FLIGHT`` batches are stored by
        two storer threads; the whole-file hash runs on a thread of its own.
        Refs are appended in order as the oldest batch completes.
        """
        with self.backend.db.write() as session:
            self.pending.open(session, time.time())
        in_flight: deque[tuple[int, Future[tuple[list[ChunkRef], NodeInfo | None]]]] = deque()
        in_flight_bytes = 0
        with (
            ThreadPoolExecutor(2, thread_name_prefix="storer") as storers,
            ThreadPoolExecutor(1, thread_name_prefix="sha") as hasher,
        ):
            try:
                while following is not None:
                    hasher.submit(self._hash_whole, current)
                    size = sum(map(len, current))
                    future = storers.submit(self._store, current, self.cut_bytes, False)
                    in_flight.append((size, future))
                    self.cut_bytes += size
                    in_flight_bytes += size
                    while len(in_flight) >= IN_FLIGHT or in_flight_bytes >= IN_FLIGHT_BYTES:
                        done, oldest = in_flight.popleft()
                        self.content.refs.extend(oldest.result()[0])
                        in_flight_bytes -= done
                    current, following = following, next(rest, None)
                while in_flight:
                    self.content.refs.extend(in_flight.popleft()[1].result()[0])
            finally:
                for _, future in in_flight:
                    future.cancel()
        self._last_batch = current

    def _store(
        self, batch: list[bytes], start: int, last: bool
    ) -> tuple[list[ChunkRef], NodeInfo | None]:
        """Store one batch starting at offset ``start``; the last one also commits,
        in the transaction that registers its chunks."""
        backend = self.backend
        hashes = list(
            backend.workers.map(chunk_hash, batch) if len(batch) > 1 else map(chunk_hash, batch)
        )
        refs = []
        end = start
        for key, data in zip(hashes, batch, strict=True):
            refs.append(ChunkRef(offset=end, length=len(data), hash=key))
            end += len(data)
        with backend.lock.shared():
            now = time.time()
            with backend.db.write() as session:
                if not self.pending.opened:  # a single batch: the whole file is in hand
                    self.pending.open(session, now, size=end)
                else:
                    self.pending.reserve(session, end, now)
                present = chunkrows.touch(session, hashes, now)
            missing = {k: d for k, d in zip(hashes, batch, strict=True) if k not in present}
            rows = chunkrows.put_blobs(backend, missing)
            with backend.db.write() as session:
                chunkrows.upsert(session, rows)
                if last:
                    if self.content.sha256 is None:  # the whole file is this one chunk
                        self.content.sha256 = hashes[0]
                    self.content.refs.extend(refs)
                    self.content.size = end
                    return refs, self.pending.commit(session, self.content)[0]
        return refs, None

    def _hash_whole(self, batch: list[bytes]) -> None:
        for data in batch:
            self.whole.update(data)


def write_stream(
    backend: Backend, target: WriteTarget, stream: ByteSource, expected_size: int | None = None
) -> NodeInfo:
    """Store ``stream`` as the new content of ``target.path`` (all or nothing)."""
    upload = Upload(backend, target)
    try:
        return upload.run(stream, expected_size)
    except SQLIntegrityError as exc:
        upload.pending.abort()
        # Only reachable if gc removed a chunk row this upload relied on.
        raise StorageUnavailable(f"the upload lost a chunk to gc, retry: {exc.orig}") from None
    except BaseException:
        upload.pending.abort()
        raise
