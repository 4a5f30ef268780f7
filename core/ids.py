"""Typed identifiers, so a node id cannot be passed where a user id is meant."""

from typing import NewType

UserId = NewType("UserId", int)
NodeId = NewType("NodeId", int)
VersionId = NewType("VersionId", int)
ChunkHash = NewType("ChunkHash", str)
"""Lower-case hex SHA-256 of a chunk's plaintext."""
