"""``NodeRef``: how every tree operation names its node, whatever the face.

A node is named by exactly one of: a drive path (WebDAV, the CLI), a node id
(the sync API), or a folder id and a name (a sync client creating or
replacing a member). Operations take a ``NodeRef`` (or a plain path string,
the common case) and ``core.access`` resolves it inside the principal's
drive, with the access check, in the operation's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InvalidRequest
from core.ids import NodeId


@dataclass(frozen=True)
class NodeRef:
    """A node by ``path``, by ``node_id``, or by ``parent_id`` and ``name``."""

    path: str | None = None
    node_id: NodeId | None = None
    parent_id: NodeId | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        named = (self.path is not None) + (self.node_id is not None) + (self.parent_id is not None)
        if named != 1 or (self.parent_id is None) != (self.name is None):
            raise InvalidRequest("a node is named by a path, a node id, or a folder id and a name")

    @classmethod
    def of(cls, ref: NodeRef | str) -> NodeRef:
        """``ref`` itself, or the reference of the path ``ref``."""
        return ref if isinstance(ref, NodeRef) else cls(path=ref)

    @classmethod
    def by_id(cls, node_id: int) -> NodeRef:
        return cls(node_id=NodeId(node_id))

    @classmethod
    def child(cls, parent_id: int, name: str) -> NodeRef:
        return cls(parent_id=NodeId(parent_id), name=name)

    @property
    def label(self) -> str:
        """How messages name the node."""
        if self.path is not None:
            return self.path
        if self.node_id is not None:
            return f"node {self.node_id}"
        return repr(self.name)


Ref = NodeRef | str
"""What operations accept: a ``NodeRef``, or a drive path."""
