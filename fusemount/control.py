"""The control interface: ``user.drivegate.*`` extended attributes on every
path of the mount. ``drivegate pin|unpin|status|umount`` use them (and so can
``getfattr``/``setfattr``): reading says a node's state and the mount's
status, writing ``pinned`` pins or unpins, writing ``upload`` = ``now`` starts
queued uploads at once (``umount`` does). docs/mount.md lists them."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fusemount.apirecords import Node
from fusemount.cache import ChunkCache
from fusemount.connectivity import Connectivity
from fusemount.errors import CacheFull, XattrError
from fusemount.pins import Pins
from fusemount.reader import FileReader
from fusemount.replica import Replica
from fusemount.treelog import TreeLog
from fusemount.uploadqueue import UploadQueue

PREFIX = b"user.drivegate."
NAMES = (b"state", b"pinned", b"pinned_by", b"cached", b"size", b"mount")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this mount is (shown in ``user.drivegate.mount``)."""

    url: str
    user: str
    cache_dir: str


class Control:
    """Answers and applies the ``user.drivegate.*`` attributes."""

    def __init__(self, replica: Replica, reader: FileReader, pins: Pins, *, cache: ChunkCache,
                 connectivity: Connectivity, identity: Identity,
                 queue: UploadQueue | None = None, tree: TreeLog | None = None,
                 tree_problems: Callable[[], list[str]] = list,
                 upload_now: Callable[[], None] = lambda: None) -> None:  # fmt: skip
        """``tree``: tree changes waiting for the server; ``tree_problems``: what the
        server refused of them; ``upload_now``: send everything waiting at once."""
        self.replica = replica
        self.queue = queue
        self.upload_now = upload_now
        self.tree = tree
        self.tree_problems = tree_problems
        self.reader = reader
        self.pins = pins
        self.cache = cache
        self.connectivity = connectivity
        self.identity = identity

    def names(self) -> list[bytes]:
        return [PREFIX + key for key in NAMES]

    def get(self, node: Node, name: bytes) -> bytes:
        key = name.removeprefix(PREFIX) if name.startswith(PREFIX) else None
        if key == b"state":
            row = self.queue.get(node.id) if self.queue is not None else None
            if self.queue is not None and self.queue.is_conflict(node.id):
                return b"conflict"
            if row is not None:
                # Local content the server does not have yet, or refused (and why).
                return (row.error or "uploading").encode()
            if self.tree is not None and self.tree.has_pending(node.id):
                return b"uploading"  # a tree change the server has not heard of yet
            return self.pins.state(node).encode()
        if key == b"pinned":
            return b"1" if self.pins.is_pinned(node) else b"0"
        if key == b"pinned_by":
            holder = self.replica.pins.pinned_by(node.id)
            path = "" if holder is None else self.replica.path_of(holder)
            return path.encode("utf-8", "surrogateescape")
        if key == b"cached":
            return str(self.pins.usage(node).cached).encode()
        if key == b"size":
            return str(self.pins.usage(node).size).encode()
        if key == b"mount":
            return json.dumps(self.describe(), sort_keys=True).encode()
        if not name.startswith(b"user."):
            # "Not supported" (not "no such attribute") makes ls stop asking for
            # security.selinux and ACLs after the first file: 20,000 fewer calls per
            # `ls -l` of 10,000 files.
            raise XattrError(f"no {name!r} attributes here", errno.ENOTSUP)
        raise XattrError(f"no attribute {name!r}", errno.ENODATA)

    def set(self, node: Node, name: bytes, value: bytes) -> None:
        if name == PREFIX + b"upload":  # write-only: `umount` asks for queued uploads now
            if value.strip() != b"now":
                raise XattrError("user.drivegate.upload takes 'now'", errno.EINVAL)
            self.upload_now()
            return
        self._settable(name)
        wanted = value.strip()
        if wanted == b"1":
            self.pins.pin(node)  # CacheFull (ENOSPC) when the pins could not fit
        elif wanted == b"0":
            self._unpin(node)
        else:
            raise XattrError("user.drivegate.pinned takes 0 or 1", errno.EINVAL)

    def remove(self, node: Node, name: bytes) -> None:
        self._settable(name)
        self._unpin(node)

    def _settable(self, name: bytes) -> None:
        if name != PREFIX + b"pinned":
            if name.startswith(PREFIX):
                raise XattrError(f"{name!r} is read-only", errno.EPERM)
            raise XattrError("the mount keeps no other attributes", errno.ENOTSUP)

    def _unpin(self, node: Node) -> None:
        try:
            self.pins.unpin(node)
        except CacheFull as exc:  # pinned through a folder above: unpin that one
            raise XattrError(str(exc), errno.EPERM) from None

    def describe(self) -> dict[str, Any]:
        """The mount as a whole (``user.drivegate.mount`` on any path)."""
        stats = self.cache.stats()
        hydration = self.pins.hydration
        quota, used = self.replica.account()
        return {
            "url": self.identity.url,
            "user": self.identity.user,
            "pid": os.getpid(),
            "online": self.connectivity.online,
            "cursor": self.replica.cursor,
            "cache_dir": self.identity.cache_dir,
            "cache": {
                "used": stats.used,
                "limit": stats.limit,
                "pinned": stats.pinned,
                "chunks": stats.chunks,
            },
            "fetched_chunks": self.reader.source.fetched,
            "fetching_chunks": self.reader.source.in_flight,
            "hydration": {
                "needed": hydration.needed_bytes,
                "files": hydration.files,
                "pending_files": hydration.pending_files,
                "pending_bytes": hydration.pending_bytes,
                "problem": hydration.problem,
            },
            "quota": quota,
            "used": used,
            "uploads": self._uploads(),
        }

    def _uploads(self) -> dict[str, Any]:
        rows = self.queue.all() if self.queue is not None else []
        changes = self.tree.ops(limit=50) if self.tree is not None else []
        changed = list(dict.fromkeys(op.node_id for op in changes))
        return {
            "pending": len(rows) + (len(self.tree) if self.tree is not None else 0),
            "tree_changes": len(self.tree) if self.tree is not None else 0,
            "pending_paths": [
                self.replica.path_of(node_id)
                for node_id in [*changed, *(row.node_id for row in rows[:50] if row.error is None)]
            ][:50],
            "problems": [
                {"path": self.replica.path_of(row.node_id), "error": row.error}
                for row in rows
                if row.error is not None
            ],
            "refused_changes": self.tree_problems(),
            "conflicts": [
                {"copy": self.replica.path_of(copy), "original": self.replica.path_of(original)}
                for copy, original in (self.queue.conflicts() if self.queue is not None else [])
                if self.replica.get(copy) is not None
            ],
        }
