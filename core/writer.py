"""Writing a file: stream → FastCDC chunks → store → one commit transaction.

The pipeline: the calling thread cuts chunks and copies each into the
current batch's arena (``core.chunkbatch``), where its SHA-256 starts on the
worker pool at once; a batch is full when the next chunk does not fit. Full
batches go to two storer threads, which under the shared collector lock touch
the chunks already known, encode and store the others on the worker pool and
register them; a thread of its own feeds each batch to the whole-file SHA-256
(a one-chunk file skips it, its SHA-256 being the chunk's name). The last
batch is registered in the same transaction as the commit, so a small file
costs two transactions. Memory is bounded by ``ARENAS`` arenas of
``chunkbatch.ARENA_BYTES`` whatever the file size: the calling thread waits
for the oldest batch to be stored and hashed before it reuses its arena.

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
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import NamedTuple

from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from cdc.chunking import ChunkRef, cut_views
from core import chunkrows
from core.backend import Backend
from core.chunkbatch import ChunkBatch
from core.chunkcodec import HEADER
from core.commit import HEARTBEAT_SECONDS, PendingWrite, UploadedContent, WriteTarget
from core.errors import DriveError, IncompleteUpload, StorageUnavailable
from core.records import ByteSource, NodeInfo

STORERS = 2
ARENAS = 4  # one being cut into, the others sent to the storers


class _GuardedStream:
    """Reads at most ``limit`` bytes; a broken source becomes IncompleteUpload.
    ``heartbeat(now)`` is called at most every ``HEARTBEAT_SECONDS`` while bytes
    arrive, however slowly (a batch may take minutes to fill)."""

    def __init__(
        self,
        source: ByteSource,
        limit: int | None,
        heartbeat: Callable[[float], None] | None = None,
    ) -> None:
        self.source = source
        self.remaining = limit
        self._heartbeat = heartbeat
        self._next_beat = time.monotonic() + HEARTBEAT_SECONDS
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
        if self._heartbeat is not None and (clock := time.monotonic()) >= self._next_beat:
            self._next_beat = clock + HEARTBEAT_SECONDS
            self._heartbeat(time.time())
        return n


class _Sent(NamedTuple):
    """A batch on its way to the store, and its turn at the whole-file hash."""

    batch: ChunkBatch
    stored: Future[tuple[list[ChunkRef], NodeInfo | None]]
    hashed: Future[None]


class Upload:
    """One streamed write: cut, hash and store batches, then commit the last one."""

    def __init__(self, backend: Backend, target: WriteTarget) -> None:
        self.backend = backend
        self.pending = PendingWrite(backend, target)
        self.content = UploadedContent()
        self.whole = hashlib.sha256()
        self.cut_bytes = 0  # bytes handed to storers so far

    def run(self, stream: ByteSource, expected_size: int | None) -> NodeInfo:
        guarded = _GuardedStream(stream, expected_size, self.pending.heartbeat)
        current = self._store_all_but_last(guarded)
        size = self.cut_bytes + current.size
        if expected_size is not None and size != expected_size:
            raise IncompleteUpload(f"the upload ended after {size} of {expected_size} bytes")
        if self.cut_bytes or len(current.frames) > 1:
            # A one-chunk file's SHA-256 is its chunk's name: _store sets it then.
            self._hash_whole(current)
            self.content.sha256 = self.whole.hexdigest()
        elif not current.frames:
            self.content.sha256 = self.whole.hexdigest()
        _, result = self._store(current, self.cut_bytes, last=True)
        assert result is not None
        return result

    def _store_all_but_last(self, stream: _GuardedStream) -> ChunkBatch:
        """Cut ``stream`` into batches and store every one but the last, which is returned.

        A batch is sent to the storers when the next chunk does not fit in it (so
        it is not the last); the calling thread goes on cutting into another arena
        and, with ``ARENAS`` in use, waits for the oldest batch to be stored and
        hashed before reusing its arena. Refs are appended in order.
        """
        in_flight: deque[_Sent] = deque()
        current = ChunkBatch()
        with (
            ThreadPoolExecutor(STORERS, thread_name_prefix="storer") as storers,
            ThreadPoolExecutor(1, thread_name_prefix="sha") as hasher,
        ):
            try:
                for data in cut_views(stream):  # type: ignore[arg-type]
                    if current.add(data, self.backend.workers):
                        continue
                    in_flight.append(self._send(current, storers, hasher))
                    if len(in_flight) < ARENAS - 1:
                        current = ChunkBatch()
                    else:
                        current = self._collect(in_flight.popleft())
                        current.clear()
                    current.add(data, self.backend.workers)  # an empty arena takes any chunk
                while in_flight:
                    self._collect(in_flight.popleft())
            finally:
                for sent in in_flight:
                    sent.stored.cancel()
        return current

    def _send(self, batch: ChunkBatch, storers: Executor, hasher: Executor) -> _Sent:
        if not self.pending.opened:
            with self.backend.db.write(durable=False) as session:  # see Database.write
                self.pending.open(session, time.time())
        sent = _Sent(
            batch,
            storers.submit(self._store, batch, self.cut_bytes, False),
            hasher.submit(self._hash_whole, batch),
        )
        self.cut_bytes += batch.size
        return sent

    def _collect(self, sent: _Sent) -> ChunkBatch:
        """Wait for a sent batch; append its refs and return it (free to reuse)."""
        self.content.refs.extend(sent.stored.result()[0])
        sent.hashed.result()
        return sent.batch

    def _store(
        self, batch: ChunkBatch, start: int, last: bool
    ) -> tuple[list[ChunkRef], NodeInfo | None]:
        """Store one batch starting at offset ``start``; the last one also commits,
        in the transaction that registers its chunks."""
        backend = self.backend
        hashes = batch.hashes()
        refs = []
        end = start
        for key, framed in zip(hashes, batch.frames, strict=True):
            refs.append(ChunkRef(offset=end, length=len(framed) - HEADER, hash=key))
            end += len(framed) - HEADER
        with backend.lock.shared():
            now = time.time()
            with backend.db.write(durable=False) as session:  # see Database.write
                if not self.pending.opened:  # a single batch: the whole file is in hand
                    self.pending.open(session, now, size=end)
                else:
                    self.pending.reserve(session, end, now)
                present = chunkrows.touch(session, hashes, now)
            named = zip(hashes, batch.frames, strict=True)
            missing = {key: chunk for key, chunk in named if key not in present}
            rows = chunkrows.put_blobs(backend, missing)
            with backend.db.write(durable=last) as session:
                chunkrows.upsert(session, rows)
                if last:
                    if self.content.sha256 is None:  # the whole file is this one chunk
                        self.content.sha256 = hashes[0]
                    self.content.refs.extend(refs)
                    self.content.size = end
                    return refs, self.pending.commit(session, self.content)[0]
        return refs, None

    def _hash_whole(self, batch: ChunkBatch) -> None:
        for data in batch.chunks():
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
