"""Changes to the tree made through the mount: mkdir, create (an empty
file), rmdir/unlink, rename, mtime. Each is one sync-API request, done at
once (it needs the server: offline it fails with ``ServerUnreachable``), and
its answer is applied to the replica straight away, so the mount shows the
change before the change feed repeats it (the feed's copy then changes
nothing).

POSIX rules the server does not know (rmdir only of an empty folder, what a
rename may replace) are the file system's (``fs``); this module only talks to
the server and keeps the replica in step.
"""

from __future__ import annotations

from fusemount.client import SyncApi
from fusemount.records import CommitTarget, Node
from fusemount.replica import Effect, Replica


class Namespace:
    """The server-side half of the mount's tree operations."""

    def __init__(self, api: SyncApi, replica: Replica) -> None:
        self.api = api
        self.replica = replica

    async def mkdir(self, parent: Node, name: str) -> tuple[Node, list[Effect]]:
        made = await self.api.mkdir(parent.id, name)
        return made, self.replica.upsert([made])

    async def create(self, parent: Node, name: str) -> tuple[Node, list[Effect]]:
        """Make an empty file (only if the name is free): its content follows by upload."""
        made = await self.api.commit(CommitTarget(parent_id=parent.id, name=name), 0, [])
        return made, self.replica.upsert([made])

    async def remove(self, node: Node) -> list[Effect]:
        """Move a file or folder to the server's trash."""
        await self.api.delete(node.id)
        return self.replica.remove(node.id)

    async def rename(
        self, node: Node, parent: Node, name: str, replace: Node | None
    ) -> list[Effect]:
        """Move ``node`` to ``parent``/``name``; ``replace`` is what is there now (if
        anything), which gives way. A file over a file becomes a new version of the
        target, which keeps its id and history (an editor's save by rename); the
        source node is gone then."""
        landed = await self.api.move(node.id, parent.id, name, overwrite=replace is not None)
        effects: list[Effect] = []
        if landed.id != node.id:
            effects += self.replica.remove(node.id)
        elif replace is not None:
            effects += self.replica.remove(replace.id)
        return effects + self.replica.upsert([landed])

    async def set_mtime(self, node: Node, mtime_ns: int) -> tuple[Node, list[Effect]]:
        changed = await self.api.set_mtime(node.id, mtime_ns)
        return changed, self.replica.upsert([changed])
