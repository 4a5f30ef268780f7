"""Open files by handle number (``fh``): a handle open for reading reads the
version it was opened on from the reader (or the working copy, while the file
has one); a handle open for writing writes the working copy through the
write-back policy (``writeback``), which its flush, fsync and last close save.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
from dataclasses import dataclass, field

import pyfuse3

from fusemount.apirecords import Node, NodeId
from fusemount.connectivity import Connectivity
from fusemount.errors import MountError
from fusemount.inodes import Inodes
from fusemount.reader import FileReader, ReadAhead
from fusemount.replica import Replica
from fusemount.writeback import WriteBack


@dataclass
class OpenFile:
    node_id: NodeId
    ahead: ReadAhead = field(default_factory=ReadAhead)
    fd: int | None = None  # the working copy, for a handle open for writing
    dirty: bool = False  # written since the last flush/fsync


class Handles:
    """The open handles and what reading and writing through them does."""

    def __init__(self, replica: Replica, reader: FileReader, writeback: WriteBack,
                 inodes: Inodes, connectivity: Connectivity) -> None:  # fmt: skip
        self.replica = replica
        self.reader = reader
        self.writeback = writeback
        self.inodes = inodes
        self.connectivity = connectivity
        self._files: dict[int, OpenFile] = {}
        self._fhs = itertools.count(1)

    def _add(self, handle: OpenFile) -> int:
        fh = next(self._fhs)
        self._files[fh] = handle
        return fh

    async def open_for_writing(self, node: Node, truncate: bool) -> int:
        fd, dirty = await self.writeback.open(node, truncate)
        return self._add(OpenFile(node.id, fd=fd, dirty=dirty))

    async def open_for_reading(self, node: Node) -> pyfuse3.FileInfo:
        if node.size and self.connectivity.online and not self.writeback.has_copy(node.id):
            # Fetched now, an open handle can still read this version if the file
            # is deleted or replaced meanwhile (the server forgets trashed manifests).
            with contextlib.suppress(MountError):
                await self.reader.manifest(node)
        fh = self._add(OpenFile(node.id))
        # The page cache may outlive this handle: `changed` drops it when a new version arrives.
        return pyfuse3.FileInfo(fh=fh, keep_cache=not self.writeback.has_copy(node.id))

    async def read(self, fh: int, off: int, size: int) -> bytes:
        handle = self._files[fh]
        inode = self.inodes.inode_of(handle.node_id)
        while True:
            if self.writeback.has_copy(handle.node_id):
                return await self.writeback.read(handle.node_id, off, size, handle.ahead)
            node = self.inodes.node(inode)
            if node is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
            data = await self.reader.read(node, off, size, handle.ahead)
            # A new version may have arrived while the chunks were fetched: then
            # these bytes would land in a page cache that was just invalidated.
            latest = self.replica.get(node.id)
            if latest is None or latest.version == node.version:
                return data

    def write(self, fh: int, off: int, buf: bytes) -> int:
        handle = self._files[fh]
        if handle.fd is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        if not self.writeback.within_quota(handle.node_id, off + len(buf)):
            raise pyfuse3.FUSEError(errno.EDQUOT)
        written = self.writeback.write(handle.node_id, off, buf)
        handle.dirty = True
        return written

    def flush(self, fh: int) -> None:
        handle = self._files[fh]
        if handle.dirty:
            self.writeback.save(handle.node_id)
            handle.dirty = False

    def fsync(self, fh: int) -> None:
        handle = self._files[fh]
        if handle.dirty or self.writeback.queued(handle.node_id):
            self.writeback.save(handle.node_id, durable=True)
            handle.dirty = False

    def release(self, fh: int) -> None:
        handle = self._files.pop(fh, None)
        if handle is not None and handle.fd is not None:
            self.writeback.release(handle.node_id, handle.dirty)
