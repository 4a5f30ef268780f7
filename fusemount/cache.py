"""The chunk cache: content-addressed files ``chunks/ab/<hash>`` holding
chunk plaintext, and their index ``cache.sqlite`` (size, last use, pinned).

- **Shared**: a chunk is stored once, whichever files and versions use it.
- **Hard limit**: bytes are reserved *before* a chunk is written, so the
  cache never holds more than ``limit`` bytes (sizes are counted in whole
  4 KiB blocks, as the disk counts them); room is made by evicting the least
  recently used unpinned chunks. If only pinned chunks are left, the new
  chunk is not cached (``CacheFull``) — pinned data is never thrown out.
- **Survives restarts**: the index is the truth; nothing is rescanned. A row
  is committed before its file is renamed into place, so a crash leaves at
  worst a row without a file (dropped when found) or a temp file (removed at
  start), never an unaccounted file.
- **Never serves bad bytes**: files are written without fsync, so each chunk
  is re-hashed on its first read after the cache is opened; a mismatch drops
  it. A full disk only means the chunk is not cached.
- **Cheap to fill**: files are written with O_DIRECT from reused page-aligned
  buffers where the file system allows it (buffered otherwise). Through the
  page cache, writing a file costs as much kernel CPU as everything else the
  mount spends on that file; the page cache would
  only hold a second copy of bytes the kernel already caches for the mounted
  file itself. ``reserve`` + ``write`` let a reader write a chunk behind its
  back: room is reserved (and the chunk counted as cached) at once.

Used from the mount's trio thread; file I/O and hashing run in worker threads.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from cdc.chunking import ChunkHash, chunk_hash
from fusemount.errors import CacheFull
from runtime.alignedbuffers import AlignedBuffers

log = logging.getLogger(__name__)

BLOCK = 4096
TOUCH_FLUSH_SECONDS = 30.0
DIRECT_BUFFER = 4 * 1024 * 1024 + BLOCK  # the largest chunk, rounded up to whole blocks

SCHEMA = """
-- One row per chunk file in chunks/. size is in whole blocks (what the disk
-- spends); a row may outlive its file after a crash, never the reverse.
CREATE TABLE IF NOT EXISTS chunks (
    hash TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    last_used REAL NOT NULL,
    pinned INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS chunks_lru ON chunks (pinned, last_used);
"""


def disk_size(length: int) -> int:
    return -(-length // BLOCK) * BLOCK


@dataclass(frozen=True, slots=True)
class CacheStats:
    used: int
    limit: int
    pinned: int
    chunks: int


class ChunkCache:
    """The on-disk chunk cache of one mount (see the module docstring)."""

    def __init__(self, directory: Path, limit: int) -> None:
        self.directory = directory
        self.limit = limit
        self._chunks = directory / "chunks"
        self._tmp = directory / "tmp"
        self._chunks.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(exist_ok=True)
        for leftover in self._tmp.iterdir():
            leftover.unlink(missing_ok=True)
        self._db = sqlite3.connect(directory / "cache.sqlite", isolation_level=None,
                                   check_same_thread=False)  # fmt: skip
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._used = int(
            self._db.execute("SELECT coalesce(sum(size), 0) FROM chunks").fetchone()[0]
        )
        self._verified: set[ChunkHash] = set()
        self._touched: dict[ChunkHash, float] = {}
        self._last_flush = time.monotonic()
        self._writing: dict[ChunkHash, _Write] = {}
        self._direct = hasattr(os, "O_DIRECT")
        self._buffers = AlignedBuffers(DIRECT_BUFFER)
        self._full_logged = 0.0
        if self._used > limit:
            self._make_room(0)

    def close(self) -> None:
        self._flush_touches()
        self._db.close()

    def path(self, digest: ChunkHash) -> Path:
        return self._chunks / digest[:2] / digest

    # -- queries ------------------------------------------------------------------

    def contains(self, digest: ChunkHash) -> bool:
        return (
            self._db.execute("SELECT 1 FROM chunks WHERE hash = ?", (digest,)).fetchone()
            is not None
        )

    def cached_among(self, digests: Iterable[ChunkHash]) -> set[ChunkHash]:
        """Which of ``digests`` are in the cache or being written to it (one query per 500)."""
        wanted = list(set(digests))
        found = {digest for digest in wanted if digest in self._writing}
        for start in range(0, len(wanted), 500):
            batch = wanted[start : start + 500]
            marks = ",".join("?" * len(batch))
            rows = self._db.execute(f"SELECT hash FROM chunks WHERE hash IN ({marks})", batch)
            found.update(ChunkHash(str(row[0])) for row in rows)
        return found

    def stats(self) -> CacheStats:
        pinned, count = self._db.execute(
            "SELECT coalesce(sum(CASE WHEN pinned = 1 THEN size ELSE 0 END), 0), count(*)"
            " FROM chunks"
        ).fetchone()
        return CacheStats(self._used, self.limit, int(pinned), int(count))

    # -- reading ------------------------------------------------------------------

    async def read(self, digest: ChunkHash, start: int = 0, end: int | None = None) -> bytes | None:
        """Bytes ``[start, end)`` of a cached chunk, or None if it is not (or no longer) cached."""
        if digest in self._writing or not self.contains(digest):
            return None  # a chunk being written is served from the reader's memory
        verify = digest not in self._verified
        try:
            data = await trio.to_thread.run_sync(self._read_file, digest, start, end, verify)
        except FileNotFoundError:
            if digest not in self._writing and not self.path(digest).exists():
                # not evicted and stored again meanwhile
                self._forget(digest)
            return None
        except OSError as exc:
            log.warning("cannot read cached chunk %s: %s", digest, exc)
            return None
        if data is None:
            log.warning("cached chunk %s was damaged on disk: dropped", digest)
            self._forget(digest, unlink=True)
            return None
        self._verified.add(digest)
        self._touch(digest)
        return data

    def _read_file(
        self, digest: ChunkHash, start: int, end: int | None, verify: bool
    ) -> bytes | None:
        with open(self.path(digest), "rb") as file:
            if verify:
                whole = file.read()
                if chunk_hash(whole) != digest:
                    return None
                return whole[start:end]
            size = os.fstat(file.fileno()).st_size if end is None else end
            return os.pread(file.fileno(), max(size - start, 0), start)

    # -- writing ------------------------------------------------------------------

    async def put(self, digest: ChunkHash, data: bytes, pinned: bool = False) -> bool:
        """Cache a verified chunk. False if it could not be stored (disk full, I/O error).

        Raises CacheFull when the limit leaves no room (everything left is pinned).
        """
        while (writing := self._writing.get(digest)) is not None:
            writing.pinned |= pinned
            await writing.done.wait()  # then: cached, or failed (try again)
        size = self.reserve(digest, len(data), pinned)
        if size is None:
            return True
        return await self.write(digest, data, size)

    def reserve(self, digest: ChunkHash, length: int, pinned: bool = False) -> int | None:
        """Make room for a new chunk and count it as cached from now on; its disk
        size, to pass to :meth:`write` (which must follow), or None when the chunk
        is cached or being written already.

        Raises CacheFull when the limit leaves no room (everything left is pinned).
        """
        if (writing := self._writing.get(digest)) is not None:
            writing.pinned |= pinned
            return None
        if self.contains(digest):
            if pinned:
                self._db.execute("UPDATE chunks SET pinned = 1 WHERE hash = ?", (digest,))
            self._touch(digest)
            return None
        size = disk_size(length)
        if not self._make_room(size):
            raise CacheFull(f"no room for a {length}-byte chunk: the cache is full of pinned data")
        self._used += size
        self._writing[digest] = _Write(pinned)
        return size

    async def write(self, digest: ChunkHash, data: bytes, size: int) -> bool:
        """Write a chunk whose room :meth:`reserve` gave (pinned as asked meanwhile);
        False if it could not be stored."""
        try:
            return await self._store(digest, data, size)
        finally:
            self._writing.pop(digest).done.set()

    async def _store(self, digest: ChunkHash, data: bytes, size: int) -> bool:
        tmp = self._tmp / f"{digest}.{os.getpid()}"
        try:
            await trio.to_thread.run_sync(self._write_file, tmp, data)
        except OSError as exc:
            self._used -= size
            tmp.unlink(missing_ok=True)
            self._log_store_failure(exc)
            return False
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO chunks (hash, size, last_used, pinned) VALUES (?, ?, ?, ?)",
                (digest, size, time.time(), int(self._writing[digest].pinned)),
            )
        except sqlite3.Error as exc:  # the index's disk is full too
            self._used -= size
            tmp.unlink(missing_ok=True)
            self._log_store_failure(OSError(str(exc)))
            return False
        try:
            await trio.to_thread.run_sync(_move_into_place, tmp, self.path(digest))
        except OSError as exc:
            self._db.execute("DELETE FROM chunks WHERE hash = ?", (digest,))
            self._used -= size
            tmp.unlink(missing_ok=True)
            self._log_store_failure(exc)
            return False
        self._verified.add(digest)
        return True

    def _write_file(self, path: Path, data: bytes) -> None:
        if self._direct:
            try:
                if _write_direct(path, data, self._buffers):
                    return
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
            # Refused (tmpfs, some network file systems): buffered from now on.
            self._direct = False
            path.unlink(missing_ok=True)
        with open(path, "wb") as file:
            file.write(data)

    def _log_store_failure(self, exc: OSError) -> None:
        now = time.monotonic()
        if now - self._full_logged > 60:
            self._full_logged = now
            log.warning("cannot write to the cache in %s (%s): reading from the server instead",
                        self.directory, exc.strerror or exc)  # fmt: skip

    # -- pins and eviction ----------------------------------------------------------

    def set_pinned(self, digests: Iterable[ChunkHash]) -> None:
        """Make exactly ``digests`` the pinned chunks (the others become evictable),
        also those being written (their rows do not exist yet)."""
        digests = set(digests)
        for digest, writing in self._writing.items():
            writing.pinned = digest in digests
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("UPDATE chunks SET pinned = 0 WHERE pinned = 1")
            self._db.executemany("UPDATE chunks SET pinned = 1 WHERE hash = ?",
                                 ((d,) for d in digests))  # fmt: skip
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _make_room(self, size: int) -> bool:
        if size > self.limit:
            return False
        if self._used + size <= self.limit:
            return True
        self._flush_touches()
        need = self._used + size - self.limit
        victims: list[tuple[ChunkHash, int]] = []
        rows = self._db.execute("SELECT hash, size FROM chunks WHERE pinned = 0 ORDER BY last_used")
        for digest, victim_size in rows:
            if digest in self._writing:
                continue  # its file is not in place yet: evicting it would orphan the file
            victims.append((ChunkHash(str(digest)), int(victim_size)))
            need -= int(victim_size)
            if need <= 0:
                break
        rows.close()
        if need > 0:
            return False
        for digest, victim_size in victims:
            self._forget(digest, unlink=True, size=victim_size)
        return True

    def _forget(self, digest: ChunkHash, unlink: bool = False, size: int | None = None) -> None:
        if size is None:
            row = self._db.execute("SELECT size FROM chunks WHERE hash = ?", (digest,)).fetchone()
            if row is None:
                return
            size = int(row[0])
        self._db.execute("DELETE FROM chunks WHERE hash = ?", (digest,))
        self._used -= size
        self._verified.discard(digest)
        self._touched.pop(digest, None)
        if unlink:
            self.path(digest).unlink(missing_ok=True)

    def _touch(self, digest: ChunkHash) -> None:
        self._touched[digest] = time.time()
        if time.monotonic() - self._last_flush > TOUCH_FLUSH_SECONDS:
            self._flush_touches()

    def _flush_touches(self) -> None:
        self._last_flush = time.monotonic()
        if not self._touched:
            return
        touched, self._touched = self._touched, {}
        with contextlib.suppress(sqlite3.Error):  # LRU order is a hint; a full disk may refuse it
            self._db.executemany("UPDATE chunks SET last_used = ? WHERE hash = ?",
                                 ((when, digest) for digest, when in touched.items()))  # fmt: skip


@dataclass(slots=True)
class _Write:
    """A chunk being written: pinned when its row goes in?"""

    pinned: bool
    done: trio.Event = field(default_factory=trio.Event)


def _write_direct(path: Path, data: bytes, buffers: AlignedBuffers) -> bool:
    """Write ``data`` with O_DIRECT (padded to whole blocks, then truncated); False
    if the file system refuses O_DIRECT at open."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return False
        raise
    try:
        buffers.write(fd, data)
    finally:
        os.close(fd)
    return True


def _move_into_place(tmp: Path, final: Path) -> None:
    final.parent.mkdir(exist_ok=True)
    os.replace(tmp, final)
