"""Sending the tree changes made through the mount to the server: the rows of
``treelog`` are replayed in order, up to ``BATCH`` in one ``POST /batch``
(the server stops at the first it refuses: the rows before it are settled,
the refusal is handled, the rest go in the next batch; a new file's create
carries its content when the uploader has it ready, see there), and each answer goes
into the replica (only once no later row waits for the same node: until
then the replica shows the mount's newer state). The pool of reserved node
ids is topped up here too, ahead of need.

What the server refuses is settled so that nothing made here is lost:

- a name taken on the server meanwhile: ours is renamed to
  ``name (conflicted copy HOST YYYY-MM-DD HHMMSS).ext`` (here too) and sent again;
- a folder deleted on the server before our new node reached it: the node is
  made in the drive's root instead;
- a node deleted on the server before our rename, delete or time change: the
  row is done (a file with queued content is made again by the uploader);
- anything else (a WebDAV lock, a move into itself after someone else's
  move): the row is dropped, the node is shown as the server has it, and the
  reason is kept for ``status``.

Offline, or when the server fails, the rows wait and are retried with back-off
(at once when a reader or the change feed finds the server back).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import trio

from fusemount.apirecords import Node, NodeId, VersionId
from fusemount.client import BatchAnswer, SyncApi
from fusemount.connectivity import Connectivity
from fusemount.errors import (
    ApiError,
    Conflict,
    NotFound,
    ServerError,
    ServerUnreachable,
    Throttled,
)
from fusemount.replica import Effect, Replica
from fusemount.treelog import TreeLog, TreeOp
from fusemount.uploader import CreateContent, conflict_name
from fusemount.uploadqueue import UploadQueue

log = logging.getLogger(__name__)

BATCH = 500  # rows sent in one request
# Offline, the pool is all a mount can create with: at least ID_LOW new files
# and folders (an unpacked source tree, say) before it needs the server again.
ID_BATCH = 5000  # ids asked for at a time
ID_LOW = 2500  # top the pool up below this many
BACKOFF = (0.25, 0.5, 1.0, 2.0, 5.0)
IDLE = 30.0
NAME_ATTEMPTS = 100


class TreeSync:
    """Replays the tree log and keeps the id pool filled (see the module docstring)."""

    def __init__(
        self,
        api: SyncApi,
        replica: Replica,
        log_: TreeLog,
        queue: UploadQueue,
        *,
        connectivity: Connectivity,
        host: str,
        changed: Callable[[list[Effect]], None] = lambda _effects: None,
        made: Callable[[NodeId, VersionId], None] = lambda _node_id, _version: None,
        contents: Callable[[list[NodeId]], Awaitable[dict[NodeId, CreateContent]]] | None = None,
        created_with: Callable[[CreateContent, Node], None] = lambda _content, _node: None,
    ) -> None:
        """``changed``: tell the kernel what changed (never blocks); ``made``: a file made
        here is on the server as this (empty) version, so its content can go;
        ``contents``: a new file's content that can go with its create, and
        ``created_with``: what to do once it went (the uploader's, see there)."""
        self.api = api
        self.replica = replica
        self.log = log_
        self.queue = queue
        self.connectivity = connectivity
        self.host = host
        self.changed = changed
        self.made = made
        self.contents = contents or _none
        self.created_with = created_with
        self._bare: set[NodeId] = set()  # creates refused with their content: go empty
        self.problems: list[str] = []
        self._wake = trio.Event()
        self._lock = trio.Lock()

    def kick(self) -> None:
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        failures = 0
        while True:
            self._wake = trio.Event()
            try:
                await self.refill()
                await self.flush()
                failures = 0
                pause = IDLE
            except (ServerUnreachable, ServerError, Throttled) as exc:
                if isinstance(exc, ServerUnreachable):
                    self.connectivity.went_offline(str(exc))
                log.info("tree changes wait: %s", exc)
                pause = BACKOFF[min(failures, len(BACKOFF) - 1)]
                failures += 1
            except Exception:  # a bug here must not take the whole mount down
                log.exception("replaying tree changes failed")
                pause = IDLE
            with trio.move_on_after(pause):
                await self._wake.wait()

    async def refill(self, at_least: int = ID_LOW) -> None:
        """Ask the server for ids when fewer than ``at_least`` are left."""
        if self.log.ids_left() < at_least:
            self.log.add_ids(await self.api.reserve_ids(ID_BATCH))

    async def take_id(self) -> NodeId:
        """An id for a new node: from the pool, else straight from the server
        (ServerUnreachable offline once the pool is empty)."""
        node_id = self.log.take_id()
        if node_id is None:
            await self.refill(at_least=1)
            node_id = self.log.take_id()
            assert node_id is not None
        if self.log.ids_left() < ID_LOW:
            self.kick()
        return node_id

    async def flush(self) -> None:
        """Replay every waiting row now (ServerUnreachable if the server is away)."""
        async with self._lock:
            while ops := self.log.ops(limit=BATCH):
                await self._replay(ops)

    async def _replay(self, ops: list[TreeOp]) -> None:
        """Send rows in one batch; settle those done, handle the refusal of the next."""
        creates = [op.node_id for op in ops if op.kind == "create" and op.node_id not in self._bare]
        self.log.sending = {op.node_id for op in ops}  # from here a delete cancels in flight
        answer: BatchAnswer | None = None
        try:
            contents = await self.contents(creates) if creates else {}
            answer = await self.api.batch([_wire(op, contents.get(op.node_id)) for op in ops])
        finally:
            self.log.sending = set()
            self._delete_cancelled(ops, answer)
        for op, node in zip(ops, answer.done, strict=False):
            self._settle(op, node, contents.get(op.node_id))
        if answer.refused is not None:
            op = ops[len(answer.done)]
            if op.node_id in contents and not _sent_again(answer.refused):
                # Refused with its content (the quota, say): the file is made empty,
                # and its content goes as a version, stopped there for `status` if so.
                self._bare.add(op.node_id)
                return
            await self._refusal(op, answer.refused)

    def _delete_cancelled(self, ops: list[TreeOp], answer: BatchAnswer | None) -> None:
        """Nodes deleted here while their create was on its way: the server may have
        made them, so they are deleted there too, unless the answer says it did not."""
        for node_id in self.log.take_cancelled():
            done = ops if answer is None else ops[: len(answer.done)]
            if any(op.node_id == node_id and op.kind in ("mkdir", "create") for op in done):
                self.log.add("delete", node_id)

    async def _refusal(self, op: TreeOp, exc: ApiError) -> None:
        match exc:
            case ServerError() | Throttled():
                raise exc  # passing: the row waits
            case NotFound():
                await self._not_found(op)
            case Conflict(code="name_taken") if op.name is not None:
                await self._rename(op)
            case Conflict(code="id_used"):  # made, then deleted (by us or someone) first
                self._settle(op, None)
            case _:
                await self._refused(op, exc)

    def _settle(self, op: TreeOp, node: Node | None, content: CreateContent | None = None) -> None:
        """The server did ``op`` (answering ``node``): drop the row and, unless later
        rows change the node again, show the server's state."""
        self.log.done(op)
        self.replica.touch([op.node_id])
        self._bare.discard(op.node_id)
        if op.kind == "create" and node is not None and node.version is not None:
            if content is not None and node.size == content.fields()["size"]:
                self.created_with(content, node)
            else:  # made empty (or a replay found it made): its content follows
                self.queue.made(op.node_id, node.version.id)
                self.made(op.node_id, node.version.id)
        if self.log.has_pending(op.node_id):
            return
        if node is None:
            if op.kind == "delete":  # gone here since the delete; made sure of, now it is done
                self.changed(self.replica.remove(op.node_id))
            return
        current = self.replica.get(node.id)
        if current is None:
            return  # deleted here meanwhile (a delete row follows, or it was cancelled)
        if (
            current.version is not None
            and node.version is not None
            and node.version.id < current.version.id
        ):  # an upload's answer applied meanwhile is newer
            node = replace(node, size=current.size, version=current.version)
        self.changed(self.replica.upsert([node]))

    async def _rename(self, op: TreeOp) -> None:
        """Our new name is taken on the server: take a conflicted copy's name."""
        assert op.name is not None and op.parent_id is not None
        taken, parent_id = op.name, op.parent_id
        for attempt in range(1, NAME_ATTEMPTS + 1):
            name = conflict_name(taken, self.host, time.localtime(), attempt)
            if self.replica.child(op.parent_id, name) is None:
                break
        op = self.log.rename(op, name)
        current = self.replica.get(op.node_id)
        if current is not None and current.parent_id == parent_id and current.name == taken:
            self.changed(self.replica.upsert([replace(current, name=name)]))
            if not current.is_folder:
                self.queue.moved(op.node_id, parent_id, name)
        holder = await self._holder(parent_id, taken)
        self.queue.conflicted(op.node_id, holder if holder is not None else op.node_id)
        log.warning("%r was taken on the server meanwhile: ours is %r", taken, name)

    async def _holder(self, parent_id: NodeId, name: str) -> NodeId | None:
        try:
            children = await self.api.children(parent_id)
        except NotFound:
            return None
        return next((child.id for child in children if child.name == name), None)

    async def _not_found(self, op: TreeOp) -> None:
        root = self.replica.root_id
        if op.kind in ("mkdir", "create") and op.parent_id != root and root is not None:
            # Its folder is gone on the server: the new node lands in the root.
            self.log.move_to(op, root)
            current = self.replica.get(op.node_id)
            if current is not None:
                self.changed(self.replica.upsert([replace(current, parent_id=root)]))
                if not current.is_folder and current.name is not None:
                    self.queue.moved(op.node_id, root, current.name)
            log.warning("the folder of new node %s is gone on the server: made in the root",
                        op.node_id)  # fmt: skip
            return
        if op.kind == "move":
            await self._refused(op, NotFound("the node or the folder it moves to is gone"))
            return
        self._settle(op, None)  # deleted or time set on a node the server no longer has

    async def _refused(self, op: TreeOp, exc: ApiError) -> None:
        """A row the server will not do: drop it, show the node as the server has it."""
        self.log.done(op)
        self.replica.touch([op.node_id])
        problem = f"{op.kind} of {self.replica.path_of(op.node_id)} refused: {exc}"
        self.problems = [*self.problems[-19:], problem]
        log.warning("%s", problem)
        if self.log.has_pending(op.node_id):
            return
        try:
            node = await self.api.node(op.node_id)
        except NotFound:
            self.changed(self.replica.remove(op.node_id))
            return
        self.changed(self.replica.upsert([node]))


async def _none(_node_ids: list[NodeId]) -> dict[NodeId, CreateContent]:
    return {}


def _sent_again(refusal: ApiError) -> bool:
    """Whether ``_refusal`` sends the row again (so it may keep its content)."""
    return isinstance(refusal, NotFound | ServerError | Throttled) or (
        isinstance(refusal, Conflict) and refusal.code in ("name_taken", "id_used")
    )


def _wire(op: TreeOp, content: CreateContent | None = None) -> dict[str, Any]:
    """The row as an operation of ``POST /batch``."""
    match op.kind:
        case "mkdir":
            return {"op": "mkdir", "id": op.node_id, "parent_id": op.parent_id,
                    "name": op.name, "mtime_ns": op.mtime_ns}  # fmt: skip
        case "create":  # with its content, or empty (the content follows as a version)
            return {"op": "commit", "id": op.node_id, "parent_id": op.parent_id,
                    "name": op.name, "mtime_ns": op.mtime_ns, "size": 0, "chunks": [],
                    **(content.fields() if content is not None else {})}  # fmt: skip
        case "move":
            return {"op": "move", "node_id": op.node_id, "parent_id": op.parent_id,
                    "name": op.name, "overwrite": op.overwrite}  # fmt: skip
        case "delete":
            return {"op": "delete", "node_id": op.node_id}
        case "mtime":
            return {"op": "patch", "node_id": op.node_id, "mtime_ns": op.mtime_ns}
    raise AssertionError(op.kind)
