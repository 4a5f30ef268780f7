"""Background uploads of queued working copies (write-back): what to send when,
and what to do about the server's answers (``contentsend`` does the sending).

A file is uploaded once its delay after the last close has passed and no
handle has it open for writing: only the chunks the server lacks go, or a
patch for a small edit of a file held in part, and the commit names the
version the edit started from (compare-and-set; docs/mount.md, "Delta
edits"). The answer goes into the replica at once. Offline, the row waits
and is retried (every few seconds, or at once when the server is back). A
version conflict (the file changed on
the server since the edit began) turns the local content into a conflicted
copy next to the file. A refusal that retrying cannot cure (the quota, the
file deleted on the server) stops the row with its reason, for ``status`` to
show: the local content is kept.

A new file's content can also go with its create (``contents_for_creates``,
called by ``treesync`` for the creates of a batch): small, due and closed,
it is cut and its missing chunks sent first (one ``missing`` for the whole
batch), and the create commits it as version 1. An unpack then costs one
commit per file on the server instead of an empty create and a version.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from cdc.chunking import ChunkRef
from fusemount.apirecords import CommitTarget, Node, NodeId
from fusemount.client import SyncApi
from fusemount.connectivity import Connectivity
from fusemount.contentsend import ContentSender, cut_whole, read_piece
from fusemount.errors import (
    BadRequest,
    Conflict,
    FileChanged,
    MountError,
    NotFound,
    QuotaExceeded,
    ServerError,
    ServerUnreachable,
    Throttled,
    UploadFailed,
)
from fusemount.replica import Effect, Replica
from fusemount.uploadqueue import Pending, UploadQueue
from fusemount.workcopy import WorkCopies

log = logging.getLogger(__name__)

PARALLEL_FILES = 4  # files uploaded at once
RETRY = 5.0  # seconds before an upload that failed for a passing reason is tried again
IDLE = 30.0
FOLD_LIMIT = 8 * 1024 * 1024  # a new file up to this size can go with its create


@dataclass(frozen=True, slots=True)
class CreateContent:
    """A new file's content, its chunks on the server: the rest of its create."""

    row: Pending
    pieces: list[ChunkRef]
    sha256: str

    def fields(self) -> dict[str, Any]:
        """The commit fields that make the create commit this content."""
        return {
            "size": sum(piece.length for piece in self.pieces),
            "chunks": [{"hash": piece.hash, "length": piece.length} for piece in self.pieces],
            "sha256": self.sha256,
            "mtime_ns": self.row.mtime_ns,
        }


class Uploader:
    """Drains the upload queue in the background (see the module docstring)."""

    def __init__(
        self,
        api: SyncApi,
        replica: Replica,
        work: WorkCopies,
        queue: UploadQueue,
        connectivity: Connectivity,
        *,
        busy: Callable[[NodeId], bool] = lambda _node_id: False,
        waiting: Callable[[NodeId], bool] = lambda _node_id: False,
        changed: Callable[[list[Effect]], None] = lambda _effects: None,
        dropped: Callable[[NodeId], None] = lambda _node_id: None,
    ) -> None:
        """``busy``: open for writing (not uploaded until closed); ``waiting``: made here,
        not yet on the server (see treesync), so its content waits; ``changed``: tell the
        kernel what an answer changed (never blocks); ``dropped``: the kernel's cached
        pages of the file are not its content any more."""
        self.api = api
        self.sender = ContentSender(api, work)
        self.replica = replica
        self.work = work
        self.queue = queue
        self.connectivity = connectivity
        self.busy = busy
        self.waiting = waiting
        self.changed = changed
        self.dropped = dropped
        self.host = socket.gethostname().split(".")[0] or "localhost"
        self._wake = trio.Event()
        self._running: dict[NodeId, trio.Event] = {}
        # Files the mount is deleting or replacing now (see writeback): their uploads' answers
        # (a commit, or "no such node") no longer tell anything about them.
        self.leaving: set[NodeId] = set()

    def kick(self) -> None:
        """Look at the queue now (a file was closed, the server came back)."""
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            self._wake = trio.Event()
            await self.drain()
            waits = [row.ready_at for row in self.queue.all() if row.error is None]
            pause = min([*(at - time.time() for at in waits), IDLE])
            with trio.move_on_after(max(pause, 0.05)):
                await self._wake.wait()

    async def drain(self) -> None:
        """Upload every row that is due and not open for writing (a few files at a time)."""
        rows = [
            row for row in self.queue.due()
            if not self.busy(row.node_id) and not self.waiting(row.node_id)
        ]  # fmt: skip
        limiter = trio.CapacityLimiter(PARALLEL_FILES)

        async def upload(row: Pending) -> None:
            async with limiter:
                await self.upload(row)

        async with trio.open_nursery() as nursery:
            for row in rows:
                nursery.start_soon(upload, row)

    async def upload(self, row: Pending) -> None:
        """Upload the file's queued content: one upload per file at a time (the
        background drain and a rename may both ask), always from the queue's
        latest row (an upload that just finished moved its base on)."""
        while (running := self._running.get(row.node_id)) is not None:
            await running.wait()
        latest = self.queue.get(row.node_id)
        if latest is None or latest.error is not None:
            return
        done = self._running[row.node_id] = trio.Event()
        try:
            await self._upload(latest)
        except Exception as exc:  # a bug here must not take the whole mount down
            log.exception("upload of node %s failed", row.node_id)
            self.queue.failed(latest, f"internal error: {exc!r} (see the mount log)")
        finally:
            del self._running[row.node_id]
            done.set()

    async def _upload(self, row: Pending) -> None:
        try:
            node = await self.sender.send(row)
        except (FileChanged, BadRequest) as exc:
            # Written while being read: what was read is no state the file had (a short
            # read here, or a chunk the server found not to hash to its name). The row
            # stays; the next drain, or the next close's mark, sends the file again.
            if isinstance(exc, FileChanged) or self._written_since(row, exc):
                log.info("upload of node %s abandoned, the file changed: %s", row.node_id, exc)
                return
            self.queue.failed(row, _reason(exc))
            log.warning("upload of node %s stopped: %s", row.node_id, exc)
            return
        except (ServerUnreachable, ServerError, Throttled) as exc:
            if isinstance(exc, ServerUnreachable):
                self.connectivity.went_offline(str(exc))
            self.queue.retry_later(row.node_id, time.time() + RETRY)
            log.info("upload of node %s postponed: %s", row.node_id, exc)
            return
        except Conflict as exc:
            if exc.code != "version_conflict":
                self.queue.failed(row, _reason(exc))
                log.warning("upload of node %s stopped: %s", row.node_id, exc)
                return
            await self._keep_as_copy(row)
            return
        except NotFound:
            if not self._gone_here(row):
                await self._keep_as_copy(row, deleted=True)
            return
        except (MountError, OSError) as exc:  # OSError: the working copy cannot be read
            reason = _reason(exc) if isinstance(exc, MountError) else str(exc)
            self.queue.failed(row, reason)
            log.warning("upload of node %s stopped: %s", row.node_id, exc)
            return
        self._committed(row, node)

    def _written_since(self, row: Pending, exc: BadRequest) -> bool:
        """A chunk refused as not hashing to its name, and the file written since ``row``
        was read (marked again, or open for writing now): the bytes changed under the
        upload. Otherwise the refusal stands."""
        latest = self.queue.get(row.node_id)
        changed = latest is None or latest.generation != row.generation
        return exc.code == "hash_mismatch" and (changed or self.busy(row.node_id))

    async def contents_for_creates(self, node_ids: list[NodeId]) -> dict[NodeId, CreateContent]:
        """The content of those new files that can go with their create: queued, due,
        closed, whole here and at most ``FOLD_LIMIT`` bytes. Their chunks the server
        lacks are sent first. Offline: ServerUnreachable."""
        now = time.time()
        rows = [
            row for node_id in node_ids
            if (row := self.queue.get(node_id)) is not None and self._foldable(row, now)
        ]  # fmt: skip
        if not rows:
            return {}
        paths = {row.node_id: self.work.path(row.node_id) for row in rows}
        try:
            cut = await trio.to_thread.run_sync(lambda: {n: cut_whole(p) for n, p in paths.items()})
        except OSError as exc:  # the upload of its own says which and why
            log.info("new files go without their content: %s", exc)
            return {}
        contents = {row.node_id: CreateContent(row, *cut[row.node_id]) for row in rows}
        holder = {piece: paths[n] for n, content in contents.items() for piece in content.pieces}

        async def read(piece: ChunkRef) -> bytes:
            return await trio.to_thread.run_sync(read_piece, holder[piece], piece)

        try:  # one ``missing`` for the whole batch of files
            await self.sender.send_missing(list(holder), read)
        except (FileChanged, BadRequest) as exc:  # written meanwhile: each goes on its own
            if isinstance(exc, BadRequest) and exc.code != "hash_mismatch":
                raise
            log.info("new files go without their content: %s", exc)
            return {}
        return contents

    def _foldable(self, row: Pending, now: float) -> bool:
        copy = self.work.copies.get(row.node_id)
        return (
            row.error is None
            and row.base_version_id == 0
            and row.ready_at <= now
            and not self.busy(row.node_id)
            and row.node_id not in self._running
            and copy is not None
            and copy.complete
            and copy.size <= FOLD_LIMIT
        )

    def created_with(self, content: CreateContent, node: Node) -> None:
        """The create carrying ``content`` made ``node`` (its first version)."""
        self._committed(content.row, node)

    def _committed(self, row: Pending, node: Node) -> None:
        assert node.version is not None
        if self.queue.get(row.node_id) is None:
            return  # deleted or replaced here meanwhile: the answer no longer tells anything
        if self.queue.uploaded(row, node.version.id):
            if not self.busy(row.node_id):
                self.work.drop(row.node_id)
            else:
                self.work.rebase(row.node_id, node.version.id)
        else:
            self.work.rebase(row.node_id, node.version.id)
        self.changed(self.replica.set_content([node]))
        log.info("uploaded node %s as version %s", node.id, node.version.number)

    def _gone_here(self, row: Pending) -> bool:
        """Whether the mount deleted or replaced the file while its upload ran."""
        return row.node_id in self.leaving or self.queue.get(row.node_id) is None

    async def _keep_as_copy(self, row: Pending, deleted: bool = False) -> None:
        """The file changed on the server since the edit began: the edit becomes a new
        file next to it, ``name (conflicted copy HOST YYYY-MM-DD HHMMSS).ext``, and the
        server's version stays under the name. Nothing is overwritten. A file deleted on
        the server meanwhile is made again with the edit, under its name if still free."""
        node = self.replica.get(row.node_id)
        parent_id, name = (row.parent_id, row.name) if node is None else (node.parent_id, node.name)
        if parent_id is None or name is None:
            self.queue.failed(row, "deleted on the server" if deleted else "conflict")
            return
        try:
            copy = await self._send_copy(row, parent_id, name, keep_name=deleted)
            current = None if deleted else await self.api.node(row.node_id)
        except (ServerUnreachable, ServerError, Throttled) as exc:
            self.queue.retry_later(row.node_id, time.time() + RETRY)
            log.info("conflicted copy of node %s postponed: %s", row.node_id, exc)
            return
        except (MountError, OSError) as exc:
            self.queue.failed(row, f"conflict; no copy: {exc}")
            log.warning("conflicted copy of node %s not made: %s", row.node_id, exc)
            return
        if copy.name != name:
            self.queue.conflicted(copy.id, row.node_id)
        self.queue.drop(row.node_id, row.generation)
        if self.queue.get(row.node_id) is None and not self.busy(row.node_id):
            self.work.drop(row.node_id)
            self.dropped(row.node_id)
        self.changed(self.replica.set_content([copy] if current is None else [copy, current]))
        if deleted:
            log.warning("node %s was deleted on the server meanwhile: the local edit is %r",
                        row.node_id, copy.name)  # fmt: skip
        else:
            log.warning("node %s changed on the server meanwhile: the local edit is %r",
                        row.node_id, copy.name)  # fmt: skip

    async def _send_copy(self, row: Pending, parent_id: NodeId, name: str, keep_name: bool) -> Node:
        """Commit the local content as a new file in the folder (the drive's root if that
        is gone too): under ``name`` if ``keep_name`` and it is free, else as a conflicted copy."""
        root = self.replica.root_id
        names = [name] if keep_name else []
        names += [conflict_name(name, self.host, time.localtime(), n) for n in range(1, 100)]
        for candidate in names:
            target = CommitTarget(parent_id=parent_id, name=candidate)
            try:
                return await self.sender.send(row, target)
            except Conflict as exc:
                if exc.code != "name_taken":
                    raise
            except NotFound:
                if root is None or parent_id == root:
                    raise
                parent_id = root
                return await self._send_copy(row, parent_id, name, keep_name)
        raise UploadFailed("no free name for the conflicted copy")


def conflict_name(name: str, host: str, when: time.struct_time, attempt: int = 1) -> str:
    """``report (conflicted copy laptop 2026-11-21 110503).odt``; a second one in the
    same second gets `` 2``."""
    stem, ext = os.path.splitext(name)
    stamp = time.strftime("%Y-%m-%d %H%M%S", when)
    extra = "" if attempt == 1 else f" {attempt}"
    return f"{stem} (conflicted copy {host} {stamp}{extra}){ext}"


def _reason(exc: MountError) -> str:
    match exc:
        case Conflict(code="version_conflict"):
            return "conflict"  # the file changed on the server since the edit began
        case QuotaExceeded(code="storage_full"):
            return "the server's disk is full"
        case QuotaExceeded():
            return "quota exceeded"
        case NotFound():
            return "deleted on the server"
    return str(exc)
