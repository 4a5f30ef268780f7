"""Background uploads of queued working copies (write-back).

A file is uploaded once its delay after the last close has passed and no
handle has it open for writing: cut into chunks as the server cuts them
(``cdc.chunking``), ask the server which chunks it lacks (``POST
/chunks/missing``), send only those, then commit the manifest naming the
version the edit started from (compare-and-set). A small edit of a file held
only in part goes as a patch instead: just the bytes written, which the
server re-cuts into chunks itself (see docs/mount.md, "Delta edits"). The
answer goes into the replica at once. Offline, the row waits and is retried (every few seconds,
or at once when the server is back). A version conflict (the file changed on
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from cdc.chunking import ChunkHash, ChunkRef, cut_file
from fusemount.apirecords import CommitTarget, Manifest, Node, NodeId
from fusemount.client import SyncApi
from fusemount.concurrency import gather, leading
from fusemount.connectivity import Connectivity
from fusemount.delta import splice
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
PARALLEL_PUTS = 4  # chunk PUTs of one file at once
RETRY = 5.0  # seconds before an upload that failed for a passing reason is tried again
IDLE = 30.0
FOLD_LIMIT = 8 * 1024 * 1024  # a new file up to this size can go with its create
# An edit of a file held in part whose written bytes are at most this many goes as
# a patch: the bytes, not the chunks around them (which would come down, be re-cut
# here and go up again). Beyond it, a chunk upload costs the server less.
PATCH_BYTES = 4 * 1024 * 1024
PATCH_RANGES = 256
PATCH_GROWTH = 64 * 1024 * 1024  # the server's bound: it cuts a patch's growth itself


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
            node = await self._send(row)
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
            cut = await trio.to_thread.run_sync(lambda: {n: _cut(p) for n, p in paths.items()})
        except OSError as exc:  # the upload of its own says which and why
            log.info("new files go without their content: %s", exc)
            return {}
        contents = {row.node_id: CreateContent(row, *cut[row.node_id]) for row in rows}
        wanted = {p.hash: (n, p) for n, c in contents.items() for p in c.pieces}
        absent = await self.api.missing(list(wanted))

        def job(node_id: NodeId, piece: ChunkRef) -> Callable[[], Awaitable[None]]:
            async def send() -> None:
                data = await trio.to_thread.run_sync(_read_path, paths[node_id], piece)
                await self.api.put_chunk(piece.hash, data)

            return send

        try:
            await gather([job(*wanted[h]) for h in absent if h in wanted], limit=PARALLEL_PUTS)
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
                return await self._send(row, target)
            except Conflict as exc:
                if exc.code != "name_taken":
                    raise
            except NotFound:
                if root is None or parent_id == root:
                    raise
                parent_id = root
                return await self._send_copy(row, parent_id, name, keep_name)
        raise UploadFailed("no free name for the conflicted copy")

    async def _send(self, row: Pending, target: CommitTarget | None = None) -> Node:
        copy = self.work.copies.get(row.node_id)
        if copy is None:
            raise UploadFailed(f"the working copy of node {row.node_id} is gone")
        if copy.complete:
            pieces, whole = await self._cut_and_send(self.work.path(row.node_id))
            return await self._commit(row, target, pieces, whole)

        origin = copy.origin
        if target is None and origin is not None and origin.version.id == row.base_version_id:
            ranges = list(copy.local)
            if (
                sum(end - start for start, end in ranges) <= PATCH_BYTES
                and len(ranges) <= PATCH_RANGES
                and copy.size - origin.size <= PATCH_GROWTH
            ):
                return await self._patch(row, copy.size, ranges)

        # Only the chunks around the edits are read and cut (see delta), and only
        # those are asked about: the origin's others are on the server, named by
        # the version the edit started from.
        planned = await self.work.plan(row.node_id)

        async def read(piece: ChunkRef) -> bytes:
            return _whole(piece, await self.work.read(row.node_id, piece.offset, piece.length))

        await self._send_missing(planned.fresh, read)
        manifest = await self.work.origin(row.node_id)  # fetched for the plan already
        try:
            return await self._commit(row, target, planned.pieces, None, manifest)
        except Conflict as exc:  # that version is gone and gc took some of its chunks
            if exc.code != "missing_chunks":
                raise
            await self._send_missing(planned.pieces, read)
            return await self._commit(row, target, planned.pieces, None, manifest)

    async def _patch(self, row: Pending, size: int, ranges: list[tuple[int, int]]) -> Node:
        """Send the bytes written (and the new size) as a patch of the base version,
        which is the origin: the server re-cuts the chunks around them itself."""
        data = []
        for start, end in ranges:
            part = await self.work.read(row.node_id, start, end - start)
            if len(part) != end - start:  # the file shrank: that patch is no state it had
                raise FileChanged(f"the working copy of node {row.node_id} shrank under its patch")
            data.append((start, part))
        return await self.api.patch(
            row.node_id, row.base_version_id, size, data, mtime_ns=row.mtime_ns
        )

    async def _commit(
        self,
        row: Pending,
        target: CommitTarget | None,
        pieces: list[ChunkRef],
        whole: str | None,
        origin: Manifest | None = None,
    ) -> Node:
        """Commit ``pieces`` as the file's content; as a splice of the origin's
        manifest when that is the version the commit is based on (only the
        chunks around the edits go, and the server rewrites only their segment)."""
        size = sum(piece.length for piece in pieces)
        spliced = None
        if target is None:
            target = CommitTarget(node_id=row.node_id, base_version_id=row.base_version_id)
            if origin is not None and origin.version.id == row.base_version_id:
                start, end, pieces = splice(origin.chunks, pieces)
                spliced = (start, end)
        chunks = [(piece.hash, piece.length) for piece in pieces]
        return await self.api.commit(
            target, size, chunks, mtime_ns=row.mtime_ns, sha256=whole, splice=spliced
        )

    async def _cut_and_send(self, path: os.PathLike[str]) -> tuple[list[ChunkRef], str]:
        """Cut a whole local file and send the chunks the server lacks as the cut goes
        on: each batch of pieces is asked about (one ``missing``) and its absent chunks
        sent while the next batch is cut. Return the pieces and the file's SHA-256."""
        batches, arrived = trio.open_memory_channel[list[ChunkRef]](1)
        sending: set[ChunkHash] = set()
        limiter = trio.CapacityLimiter(PARALLEL_PUTS)

        def cut() -> tuple[list[ChunkRef], str]:
            with open(path, "rb") as file:
                return cut_file(file, lambda batch: trio.from_thread.run(batches.send, batch))

        with open(path, "rb") as file:
            fd = file.fileno()

            async def send(piece: ChunkRef) -> None:
                async with limiter:
                    data = await trio.to_thread.run_sync(_read, fd, piece)
                    await self.api.put_chunk(piece.hash, data)

            outcome: list[tuple[list[ChunkRef], str]] = []

            async def run_cut() -> None:
                async with batches:  # closed when the cut ends: the loop below ends too
                    outcome.append(await trio.to_thread.run_sync(cut))

            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(run_cut)
                    # Closed on the way out: a cut still running then stops at its next batch.
                    async with arrived:
                        async for batch in arrived:
                            fresh = [p for p in batch if p.hash not in sending]
                            unique = list(dict.fromkeys(p.hash for p in fresh))
                            absent = await self.api.missing(unique)
                            for piece in fresh:
                                if piece.hash in absent and piece.hash not in sending:
                                    sending.add(piece.hash)
                                    nursery.start_soon(send, piece)
            except BaseExceptionGroup as group:  # as if the work had run alone
                first = leading(group, MountError, OSError)
                if first is None:
                    raise
                raise first from None
        return outcome[0]

    async def _send_missing(
        self, pieces: list[ChunkRef], read: Callable[[ChunkRef], Awaitable[bytes]]
    ) -> None:
        """Ask the server which chunks it lacks; send those."""
        unique = list(dict.fromkeys(piece.hash for piece in pieces))
        absent = await self.api.missing(unique)
        first: dict[ChunkHash, ChunkRef] = {}
        for piece in pieces:
            if piece.hash in absent:
                first.setdefault(piece.hash, piece)

        def job(piece: ChunkRef) -> Callable[[], Awaitable[None]]:
            async def send() -> None:
                await self.api.put_chunk(piece.hash, await read(piece))

            return send

        # A few at a time: the server works on one while the next is in transit (and
        # at most that many chunks are in memory).
        await gather([job(piece) for piece in first.values()], limit=PARALLEL_PUTS)


def conflict_name(name: str, host: str, when: time.struct_time, attempt: int = 1) -> str:
    """``report (conflicted copy laptop 2026-11-21 110503).odt``; a second one in the
    same second gets `` 2``."""
    stem, ext = os.path.splitext(name)
    stamp = time.strftime("%Y-%m-%d %H%M%S", when)
    extra = "" if attempt == 1 else f" {attempt}"
    return f"{stem} (conflicted copy {host} {stamp}{extra}){ext}"


def _cut(path: os.PathLike[str]) -> tuple[list[ChunkRef], str]:
    with open(path, "rb") as file:
        return cut_file(file)


def _read(fd: int, piece: ChunkRef) -> bytes:
    return _whole(piece, os.pread(fd, piece.length, piece.offset))


def _whole(piece: ChunkRef, data: bytes) -> bytes:
    """``data`` read for ``piece``; ``FileChanged`` if the file no longer holds it all
    (a short or empty chunk would only be refused by the server)."""
    if len(data) != piece.length:
        raise FileChanged(f"{len(data)} bytes at offset {piece.offset}, not {piece.length}")
    return data


def _read_path(path: os.PathLike[str], piece: ChunkRef) -> bytes:
    with open(path, "rb") as file:
        return _read(file.fileno(), piece)


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
