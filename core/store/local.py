"""``file://DIR``: chunks as files under DIR/ab/<hash> (256 folders; ext4 and XFS
index large folders, and fewer folders mean fewer folder fsyncs).

Writes go to DIR/tmp, are fsynced, renamed into place and the directory is
fsynced, so a crash leaves either no chunk or a whole one.

Blobs are written with O_DIRECT where the file system allows it: chunks are
written once and rarely read back soon, and the page-cache path costs
several times the kernel CPU per byte written (figures: bench/README.md).
Where O_DIRECT is refused (tmpfs, some network file systems) the store falls
back to ordinary buffered writes.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from core.errors import ChunkMissing, StorageFull, StorageUnavailable
from core.ids import ChunkHash
from runtime.alignedbuffers import AlignedBuffers


class LocalChunkStore:
    """Chunk store on a local (or locally mounted) file system."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"file://{root}"
        self._tmp = root / "tmp"
        self._direct = hasattr(os, "O_DIRECT")
        self._buffers = AlignedBuffers(_DIRECT_BUFFER, fault_in=True)
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot create chunk dir {root}: {exc}") from None

    def _path(self, key: ChunkHash) -> Path:
        return self.root / key[:2] / key

    def put(self, key: ChunkHash, blob: bytes | memoryview) -> None:
        final = self._path(key)
        if final.exists():
            os.utime(final)  # a re-put counts as fresh for gc's orphan sweep
            return
        tmp = self._tmp / f"{key}.{uuid.uuid4().hex}"
        try:
            if not (self._direct and self._write_direct(tmp, blob)):
                _write_buffered(tmp, blob)
            if not final.parent.is_dir():
                final.parent.mkdir(exist_ok=True)
                _fsync_dir(self.root)
            os.rename(tmp, final)
            _fsync_dir(final.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(f"cannot write chunk {key}: the chunk store is full") from None
            raise StorageUnavailable(f"cannot write chunk {key}: {exc}") from None

    def _write_direct(self, path: Path, blob: bytes | memoryview) -> bool:
        """Write ``blob`` with O_DIRECT from a page-aligned buffer; False if refused."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_DIRECT, 0o644)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._direct = False
            return False
        try:
            self._buffers.write(fd, blob)
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            os.unlink(path)
            if exc.errno != errno.EINVAL:
                raise
            self._direct = False
            return False
        os.close(fd)
        return True

    def get(self, key: ChunkHash) -> bytes:
        try:
            with open(self._path(key), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise ChunkMissing(f"chunk {key} is missing from {self.url}") from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read chunk {key}: {exc}") from None

    def get_split(self, key: ChunkHash, head: int) -> tuple[bytes, bytes | memoryview]:
        # Two reads, each into a bytes object of its own: the rest is never copied again.
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
        except FileNotFoundError:
            raise ChunkMissing(f"chunk {key} is missing from {self.url}") from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read chunk {key}: {exc}") from None
        try:
            size = os.fstat(fd).st_size
            first = os.pread(fd, head, 0)
            rest = _pread_all(fd, max(size - head, 0), head)
        except OSError as exc:
            raise StorageUnavailable(f"cannot read chunk {key}: {exc}") from None
        finally:
            os.close(fd)
        return first, rest

    def has_many(self, keys: Iterable[ChunkHash]) -> set[ChunkHash]:
        return {key for key in keys if self._path(key).exists()}

    def delete_many(self, keys: Iterable[ChunkHash]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def list_all(self) -> Iterator[tuple[ChunkHash, float]]:
        for first in sorted(self.root.glob("[0-9a-f][0-9a-f]")):
            for entry in first.iterdir():
                try:
                    yield ChunkHash(entry.name), entry.stat().st_mtime
                except FileNotFoundError:
                    continue

    def prefetch(self, keys: Iterable[ChunkHash]) -> None:
        """Ask the kernel to read these chunk files into the page cache in the background
        (more reads in flight than the reader's own read-ahead keeps)."""
        if not hasattr(os, "posix_fadvise"):
            return
        for key in keys:
            try:
                fd = os.open(self._path(key), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass
            finally:
                os.close(fd)

    def close(self) -> None:
        """Nothing to release."""


_DIRECT_BUFFER = 4 * 1024 * 1024 + 64 * 1024  # the largest stored chunk, rounded up


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes at ``offset`` (fewer only at the end of the file)."""
    data = os.pread(fd, size, offset)
    if len(data) == size or not data:
        return data
    parts = [data]  # a short read: rare, so the join's copy does not matter
    got = len(data)
    while got < size and (more := os.pread(fd, size - got, offset + got)):
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _write_buffered(path: Path, blob: bytes | memoryview) -> None:
    with open(path, "wb") as handle:
        handle.write(blob)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
