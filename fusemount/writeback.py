"""The write-back policy: what writing through the mount does to working
copies, the upload queue and the uploader, independent of FUSE (no pyfuse3
here, so it is tested without mounting).

Content writes go to the file's working copy (``workcopy``); ``save`` (a
``flush``, ``fsync`` or the last close) records it and queues its upload
(``uploadqueue``) before it returns, and ``uploader`` sends it ``delay`` seconds
later, once no handle writes the file. While a working copy exists, reads,
size and mtime come from it. A file deleted while open for writing keeps its
working copy until its last writer closes.

A file renamed over another takes the target's place (the target's history
grows by one version): locally, when the source has a working copy and no
handle writes either file (an editor's save; an online-only source's working
copy is its manifest alone); otherwise on the server at once, after both
files' content went up. The file system decides what the kernel is told.

Quota: a write that grows a file beyond the quota as last known is refused
here; usage that changed since then is found by the upload.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator

from fusemount.apirecords import Node, NodeId, VersionId
from fusemount.errors import CacheFull, MountError, ServerUnreachable, UploadFailed
from fusemount.namespace import Namespace
from fusemount.reader import ReadAhead
from fusemount.replica import Effect, Replica
from fusemount.uploader import Uploader
from fusemount.uploadqueue import UploadQueue
from fusemount.workcopy import WorkCopies, disk_errors

log = logging.getLogger(__name__)

DEFAULT_DELAY = 2.0  # seconds after a close before the upload starts


class WriteBack:
    """The write side's policy over its parts (see the module docstring)."""

    def __init__(  # noqa: PLR0917 (the write side's parts)
        self,
        replica: Replica,
        namespace: Namespace,
        work: WorkCopies,
        queue: UploadQueue,
        uploader: Uploader,
        delay: float = DEFAULT_DELAY,
    ) -> None:
        self.replica = replica
        self.namespace = namespace
        self.work = work
        self.queue = queue
        self.uploader = uploader
        self.delay = delay
        self._unlinked: set[NodeId] = set()  # deleted while open for writing

    # -- content ------------------------------------------------------------------

    def has_copy(self, node_id: NodeId) -> bool:
        return self.work.has(node_id)

    def busy(self, node_id: NodeId) -> bool:
        """Open for writing: not uploaded until the last writer closes."""
        return self.work.in_use(node_id)

    def local_stat(self, node_id: NodeId) -> os.stat_result | None:
        """The working copy's size and mtime, while the file has one."""
        if not self.work.has(node_id):
            return None
        try:
            return self.work.stat(node_id)
        except OSError:
            return None

    async def open(self, node: Node, truncate: bool) -> tuple[int, bool]:
        """Open the file's working copy for writing: its fd, and whether truncating
        changed it (so that the handle has something to save)."""
        fd = await self.work.acquire(node, empty=truncate)
        if truncate and self.work.size(node.id):
            self.work.truncate(node.id, 0)
            return fd, True
        return fd, False

    async def read(self, node_id: NodeId, offset: int, size: int, ahead: ReadAhead) -> bytes:
        return await self.work.read(node_id, offset, size, ahead)

    def within_quota(self, node_id: NodeId, end: int) -> bool:
        """Whether growing the file (open for writing) to ``end`` bytes stays within the
        quota as last known."""
        quota, used = self.replica.account()
        if quota is None:
            return True
        node = self.replica.get(node_id)
        known = node.size if node is not None else 0
        grows = end - max(self.work.size(node_id), known)
        return not (grows > 0 and used + (end - known) > quota)

    def write(self, node_id: NodeId, offset: int, data: bytes) -> int:
        self.work.check_room(len(data))
        return self.work.write(node_id, offset, data)

    def queued(self, node_id: NodeId) -> bool:
        return self.queue.get(node_id) is not None

    def save(self, node_id: NodeId, durable: bool = False) -> None:
        """Record the working copy, then queue its upload (close and fsync return after;
        ``durable``, for fsync: on disk, so that a power cut cannot lose it either)."""
        if node_id in self._unlinked or not self.work.has(node_id):
            return
        self.work.save(node_id, durable)
        mtime_ns = self.work.stat(node_id).st_mtime_ns
        base = self.work.base(node_id)
        try:
            node = self.replica.get(node_id)
            place = None if node is None else (node.parent_id, node.name)
            ready_at = time.time() + self.delay
            self.queue.mark(node_id, base, mtime_ns, ready_at, place=place, durable=durable)
            if durable:
                self.namespace.log.sync()  # the file and its folders made here, if waiting
        except sqlite3.OperationalError as exc:  # "database or disk is full"
            raise CacheFull(f"cannot queue the upload: {exc}") from None
        self.uploader.kick()

    def release(self, node_id: NodeId, dirty: bool) -> None:
        """A handle open for writing closes (saved first if ``dirty``; a failure is logged,
        as a close cannot report it)."""
        try:
            if dirty:
                self.save(node_id)
        except MountError as exc:
            log.error("saving node %s on release: %s", node_id, exc)
        self.work.release(node_id)
        if node_id in self._unlinked and not self.work.in_use(node_id):
            self._unlinked.discard(node_id)
            self.work.drop(node_id)
        self.uploader.kick()

    async def truncate(self, node: Node, size: int) -> None:
        await self.work.acquire(node, empty=size == 0)
        try:
            self.work.truncate(node.id, size)
            self.save(node.id)
        finally:
            self.work.release(node.id)
            self.uploader.kick()

    def set_mtime(self, node_id: NodeId, mtime_ns: int) -> bool:
        """Set the working copy's mtime (the upload carries it); False if there is none."""
        if not self.work.has(node_id):
            return False
        with disk_errors():
            os.utime(self.work.path(node_id), ns=(mtime_ns, mtime_ns))
        self.save(node_id)
        return True

    def forget(self, node_id: NodeId) -> None:
        """The file is gone from the server: its queued upload goes, and its working copy
        once no handle writes it (an open handle keeps reading and writing it till then)."""
        self.queue.drop(node_id)
        if self.work.in_use(node_id):
            self._unlinked.add(node_id)
        else:
            self.work.drop(node_id)

    def moved(self, node_id: NodeId, parent_id: NodeId, name: str) -> None:
        self.queue.moved(node_id, parent_id, name)

    # -- a file renamed over a file -------------------------------------------------

    async def prepare_rename_over(self, node: Node, target: Node) -> None:
        """Before ``node`` replaces ``target``: give an online-only source a working copy
        (its manifest, no bytes fetched), and make the source's unwritten bytes findable
        without it."""
        if not self.work.has(node.id) and not self._either_in_use(node, target):
            await self.work.acquire(node, empty=False)
            self.work.release(node.id)
        if self.work.has(node.id):
            await self.work.resolve_origin(node.id)

    def replaceable_here(self, node: Node, target: Node) -> bool:
        """Whether ``node`` can replace ``target`` locally: the source has a working copy
        (an editor's save: written to a temporary file, renamed over the original; or an
        online-only file's manifest) and no handle has either open for writing."""
        return self.work.has(node.id) and not self._either_in_use(node, target)

    def _either_in_use(self, node: Node, target: Node) -> bool:
        return self.work.in_use(node.id) or self.work.in_use(target.id) or node.id in self._unlinked

    def replace_locally(self, node: Node, target: Node) -> list[Effect]:
        """The target takes the source's working copy as its new content (uploaded as
        its next version, from the version it is at), and the source goes."""
        row = self.queue.get(target.id)
        if row is not None:
            base = row.base_version_id
        else:  # as the target is now: its create may have been answered since the lookup
            current = self.replica.get(target.id) or target
            base = current.version.id if current.version is not None else VersionId(0)
        self.queue.drop(node.id)
        self.work.drop(target.id)
        self.work.adopt(node.id, target.id, base)
        effects = self.namespace.remove(node)
        self.save(target.id)
        return effects

    async def replace_on_server(
        self, node: Node, target: Node, parent: Node, name: str
    ) -> list[Effect]:
        """The server moves its own copies: local content goes up first, the target's
        too, so its history holds every version it had."""
        await self.namespace.sync.flush()
        await self._upload_now(node.id)
        await self._upload_now(target.id)
        with self._leaving(node, target):
            effects = await self.namespace.move_over_on_server(node, parent, name, target)
        self.forget(node.id)  # the source node is gone; its content is the target's
        self.forget(target.id)
        return effects

    @contextlib.contextmanager
    def _leaving(self, *nodes: Node | None) -> Iterator[None]:
        """While the server deletes or replaces these nodes, uploads leave them alone."""
        ids = {node.id for node in nodes if node is not None}
        self.uploader.leaving |= ids
        try:
            yield
        finally:
            self.uploader.leaving -= ids

    async def _upload_now(self, node_id: NodeId) -> None:
        """Upload the file's queued content now; fail if it does not go (offline:
        ServerUnreachable; a refusal: UploadFailed, the reason in ``status``)."""
        row = self.queue.get(node_id)
        if row is None:
            return
        if row.error is None:
            await self.uploader.upload(row)
        left = self.queue.get(node_id)
        if left is not None and left.error is not None:
            raise UploadFailed(f"node {node_id} cannot be uploaded: {left.error}")
        if left is not None and left.generation == row.generation:
            raise ServerUnreachable(f"node {node_id} is not uploaded yet")
