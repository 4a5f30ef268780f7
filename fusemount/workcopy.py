"""Working copies: the local content of files being written
(``CACHE_DIR/work/<node id>``), one per file, shared by its open handles.

A file opened for writing gets a working copy first: empty when created or
truncated, else filled with the server's content through the reader (the
whole file, for now: delta edits of online-only files come later). Writes
land there; reads and attributes (size, mtime) come from it while it exists.
``base`` remembers the server version each working copy's content derives
from, which the upload names as its compare-and-set base. A working copy
without a queued upload holds nothing the server lacks: it is dropped after
its upload and at start.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from fusemount.errors import CacheFull
from fusemount.reader import FileReader, ReadAhead
from fusemount.records import Node, NodeId, VersionId

BLOCK = 4 * 1024 * 1024
RESERVE = 4 * 1024 * 1024  # bytes of the cache disk working copies leave free


class WorkCopies:
    """The working copies of one mount (see the module docstring)."""

    def __init__(self, cache_dir: Path, reader: FileReader) -> None:
        self.dir = cache_dir / "work"
        self.dir.mkdir(exist_ok=True)
        self.reader = reader
        self.base: dict[NodeId, VersionId] = {}
        self._fds: dict[NodeId, int] = {}
        self._users: dict[NodeId, int] = {}

    def path(self, node_id: NodeId) -> Path:
        return self.dir / str(node_id)

    def has(self, node_id: NodeId) -> bool:
        return node_id in self.base

    def keep_only(self, queued: dict[NodeId, VersionId]) -> None:
        """At start: keep the working copies with a queued upload, drop the rest."""
        for entry in self.dir.iterdir():
            name = entry.name
            node_id = NodeId(int(name)) if name.isdigit() else None
            if node_id is not None and node_id in queued and entry.is_file():
                self.base[node_id] = queued[node_id]
            else:
                entry.unlink(missing_ok=True)

    def check_room(self, size: int) -> None:
        """CacheFull (ENOSPC) unless ``size`` more bytes leave the disk its reserve: the
        replica and the upload queue must still be writable when working copies fill it
        (a delete, a close that queues an upload)."""
        with disk_errors():
            disk = os.statvfs(self.dir)
        if disk.f_bavail * disk.f_frsize < size + RESERVE:
            raise CacheFull("the cache disk is full (its last MiBs are kept for metadata)")

    def stat(self, node_id: NodeId) -> os.stat_result:
        fd = self._fds.get(node_id)
        return os.fstat(fd) if fd is not None else os.stat(self.path(node_id))

    async def acquire(self, node: Node, empty: bool) -> int:
        """A descriptor of the node's working copy, made first if needed (``empty``:
        start from nothing, else from the server's content). Pair with ``release``."""
        if node.id not in self.base:
            if node.version is None:
                raise CacheFull(f"node {node.id} has no version to write on")  # not a file
            await self._make(node, empty or node.size == 0)
            self.base[node.id] = node.version.id
        fd = self._fds.get(node.id)
        if fd is None:
            with disk_errors():
                fd = os.open(self.path(node.id), os.O_RDWR)
            self._fds[node.id] = fd
        self._users[node.id] = self._users.get(node.id, 0) + 1
        return fd

    def release(self, node_id: NodeId) -> None:
        left = self._users.get(node_id, 0) - 1
        if left > 0:
            self._users[node_id] = left
            return
        self._users.pop(node_id, None)
        fd = self._fds.pop(node_id, None)
        if fd is not None:
            os.close(fd)

    def in_use(self, node_id: NodeId) -> bool:
        return node_id in self._users

    def drop(self, node_id: NodeId) -> None:
        """Forget the working copy (after its upload, or when the file was deleted)."""
        self.base.pop(node_id, None)
        fd = self._fds.pop(node_id, None)
        if fd is not None:
            os.close(fd)
        self._users.pop(node_id, None)
        self.path(node_id).unlink(missing_ok=True)

    def sync(self, node_id: NodeId) -> None:
        """Make the working copy durable (before the queue row that names it)."""
        fd = self._fds.get(node_id)
        with disk_errors():
            if fd is not None:
                os.fsync(fd)
            else:
                with open(self.path(node_id), "rb+") as file:
                    os.fsync(file.fileno())

    async def _make(self, node: Node, empty: bool) -> None:
        final = self.path(node.id)
        partial = final.with_suffix(".part")
        try:
            with open(partial, "wb") as out:
                if not empty:
                    ahead = ReadAhead()
                    for offset in range(0, node.size, BLOCK):
                        out.write(await self.reader.read(node, offset, BLOCK, ahead))
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, final)
            _sync_dir(self.dir)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise _disk_error(exc) from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


@contextlib.contextmanager
def disk_errors() -> Iterator[None]:
    """A full disk becomes CacheFull (ENOSPC to the writer); other OSErrors pass."""
    try:
        yield
    except OSError as exc:
        raise _disk_error(exc) from None


def _disk_error(exc: OSError) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return CacheFull(f"the cache disk is full: {exc.strerror}")
    return exc


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
