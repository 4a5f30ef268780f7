"""Inode bookkeeping: node id ↔ inode, the kernel's lookup counts, ghosts and
stand-ins, and which notices a change of the replica calls for.

Inode numbers are the server's node ids; the root folder's id and
``ROOT_INODE`` swap places (an involution, so the mapping is stable across
remounts and needs no table). The kernel's lookup counts are kept exactly
(``counted`` for each ``lookup`` and ``readdirplus`` entry, ``forget``). A node
deleted on the server while the kernel still knows it stays answerable as a
"ghost" until forgotten. A file renamed over another: the kernel moved the
source's inode to the name until it takes our invalidation; meanwhile that
inode "stands in" for the target.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Literal

import pyfuse3

from fusemount.apirecords import Node, NodeId
from fusemount.replica import Effect, Replica

Notice = tuple[Literal["entry"], int, bytes] | tuple[Literal["inode"], int, bool]
"""("entry", folder inode, name) or ("inode", inode, attributes only)."""


def fs_name(value: str) -> bytes:
    """A name as the kernel sees it (the server's names are text)."""
    return value.encode("utf-8", "surrogateescape")


class Inodes:
    """What the kernel knows by inode (see the module docstring)."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.lookups: Counter[int] = Counter()
        self._ghosts: dict[int, Node] = {}
        self._stand_ins: dict[int, NodeId] = {}

    def _root(self) -> NodeId:
        root = self.replica.root_id
        assert root is not None, "the replica is loaded before the mount"
        return root

    def inode_of(self, node_id: int) -> int:
        root = self._root()
        if node_id == root:
            return pyfuse3.ROOT_INODE
        return root if node_id == pyfuse3.ROOT_INODE else node_id

    def node_id_of(self, inode: int) -> NodeId:
        return NodeId(self.inode_of(inode))  # the mapping is its own inverse

    def node(self, inode: int) -> Node | None:
        """The node the inode stands for now: in the replica, a stand-in's target, or a ghost."""
        node = self.replica.get(self.node_id_of(inode))
        if node is None and inode in self._stand_ins:
            node = self.replica.get(self._stand_ins[inode])
        return node or self._ghosts.get(inode)

    def counted(self, inode: int) -> None:
        """The kernel was told of the inode once more (a lookup or a readdirplus entry)."""
        self.lookups[inode] += 1

    def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for inode, count in inode_list:
            left = self.lookups[inode] - count
            if left > 0:
                self.lookups[inode] = left
            else:
                del self.lookups[inode]
                self._ghosts.pop(inode, None)
                self._stand_ins.pop(inode, None)

    def stand_in(self, node_id: NodeId, for_id: NodeId) -> None:
        """``node_id``'s inode answers for ``for_id`` until the kernel forgets it."""
        self._stand_ins[self.inode_of(node_id)] = for_id

    def notices(self, effects: list[Effect] | None) -> list[Notice]:
        """What the kernel must drop after these changes (None: everything it holds);
        nodes deleted while the kernel knows them become ghosts."""
        if effects is None:
            return [("inode", inode, False) for inode in list(self.lookups)]
        notices: list[Notice] = []
        for effect in effects:
            notices.extend(self._notices_for(effect.old, effect.new))
        return list(dict.fromkeys(notices))

    def _known(self, node_id: int | None) -> bool:
        if node_id is None:
            return False
        inode = self.inode_of(node_id)
        return inode == pyfuse3.ROOT_INODE or inode in self.lookups

    def _notices_for(self, old: Node | None, new: Node | None) -> list[Notice]:
        out: list[Notice] = []
        moved = old is None or new is None or (old.parent_id, old.name) != (new.parent_id, new.name)
        for side in (old, new):
            if side is not None and moved and self._known(side.parent_id):
                assert side.parent_id is not None
                out.append(("entry", self.inode_of(side.parent_id), fs_name(side.name)))
                out.append(("inode", self.inode_of(side.parent_id), True))
        node = new or old
        assert node is not None
        inode = self.inode_of(node.id)
        if new is None:
            if inode in self.lookups and old is not None:
                self._ghosts[inode] = old
            return out
        self._ghosts.pop(inode, None)
        if old is not None and old != new and inode in self.lookups:
            same_content = old.version == new.version and old.size == new.size
            out.append(("inode", inode, same_content))
        return out
