"""Typed identifiers, so a node id cannot be passed where a user id is meant."""

from typing import NewType

from cdc.chunking import ChunkHash

__all__ = ["ChunkHash", "GroupId", "NodeId", "UserId", "VersionId"]

UserId = NewType("UserId", int)
NodeId = NewType("NodeId", int)
VersionId = NewType("VersionId", int)
GroupId = NewType("GroupId", int)
