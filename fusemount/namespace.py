"""Changes to the tree made through the mount: mkdir, create (an empty file),
rmdir/unlink, rename, mtime.

They are made locally first: the replica shows the change at once, and a
row in the tree log (``treelog``) says what the server must be told;
``treesync`` replays the rows in order, in the background, offline too
(they wait). A new node takes an id the server reserved for this mount (the
id is the inode number, so it cannot wait for the server).

A file renamed over another is made locally as well (``writeback.replace_locally``:
the target takes the source's working copy, which for an online-only source
is its manifest alone). Only while either file is open for writing is it
made on the server: the waiting rows are replayed first and the move is made
there at once (offline: ``ServerUnreachable``).

POSIX rules the server does not know (rmdir only of an empty folder, what a
rename may replace) are the file system's (``fs``).
"""

from __future__ import annotations

import time
from dataclasses import replace

from fusemount.apirecords import Node
from fusemount.client import SyncApi
from fusemount.replica import Effect, Replica
from fusemount.treelog import TreeLog
from fusemount.treesync import TreeSync


class Namespace:
    """The mount's tree operations (see the module docstring)."""

    def __init__(self, api: SyncApi, replica: Replica, log: TreeLog, sync: TreeSync) -> None:
        self.api = api
        self.replica = replica
        self.log = log
        self.sync = sync

    async def mkdir(self, parent: Node, name: str) -> tuple[Node, list[Effect]]:
        return await self._make(parent, name, "folder")

    async def create(self, parent: Node, name: str) -> tuple[Node, list[Effect]]:
        """Make an empty file: its content follows by upload, once the server has it."""
        return await self._make(parent, name, "file")

    async def _make(self, parent: Node, name: str, kind: str) -> tuple[Node, list[Effect]]:
        node_id = await self.sync.take_id()
        now = time.time_ns()
        self.log.add("mkdir" if kind == "folder" else "create", node_id,
                     parent_id=parent.id, name=name, mtime_ns=now)  # fmt: skip
        made = Node(
            node_id, parent.id, name, "folder" if kind == "folder" else "file", 0, now, None
        )
        effects = self.replica.upsert([made])
        self.sync.kick()
        return made, effects

    def remove(self, node: Node) -> list[Effect]:
        """Move a file or folder to the server's trash (a node the server never saw
        is just forgotten)."""
        if not self.log.cancel(node.id):
            self.log.add("delete", node.id)
        effects = self.replica.remove(node.id)
        self.sync.kick()
        return effects

    def move(
        self, node: Node, parent: Node, name: str, replace_folder: Node | None
    ) -> list[Effect]:
        """Move ``node`` to ``parent``/``name``; ``replace_folder``: an empty folder there,
        which gives way."""
        self.log.add("move", node.id, parent_id=parent.id, name=name,
                     overwrite=replace_folder is not None)  # fmt: skip
        effects: list[Effect] = []
        if replace_folder is not None:
            effects += self.replica.remove(replace_folder.id)
        effects += self.replica.upsert([replace(node, parent_id=parent.id, name=name)])
        self.sync.kick()
        return effects

    async def move_over_on_server(
        self, node: Node, parent: Node, name: str, target: Node
    ) -> list[Effect]:
        """Move ``node`` over the file ``target`` on the server now (after every waiting
        row): it becomes the target's new version, which keeps its id and history."""
        await self.sync.flush()
        landed = await self.api.move(node.id, parent.id, name, overwrite=True)
        effects: list[Effect] = []
        if landed.id != node.id:
            effects += self.replica.remove(node.id)
        else:
            effects += self.replica.remove(target.id)
        return effects + self.replica.upsert([landed])

    def set_mtime(self, node: Node, mtime_ns: int) -> tuple[Node, list[Effect]]:
        self.log.add("mtime", node.id, mtime_ns=mtime_ns)
        changed = replace(node, mtime_ns=mtime_ns)
        effects = self.replica.upsert([changed])
        self.sync.kick()
        return changed, effects
