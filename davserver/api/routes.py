"""The route table of the sync API: every path, relative to ``/.drivegate/api/v1``, and the
resource that answers it. The app and the OpenAPI document are both built
from this one list."""

from __future__ import annotations

import falcon.routing

from core import Drive
from davserver.api import admin, batch, chunks, commit, nodes, shares, sync
from davserver.api.models import MAX_INT


class IdConverter(falcon.routing.BaseConverter):
    """``{name:id}``: a node id or version number, 1 to 2^63-1 (a SQL BIGINT) in ASCII
    digits; anything else matches no route (404), never reaches the database."""

    def convert(self, value: str) -> int | None:
        if not (value.isascii() and value.isdigit()) or len(value) > len(str(MAX_INT)):
            return None
        number = int(value)
        return number if 1 <= number <= MAX_INT else None


CONVERTERS = {"id": IdConverter}


def routes(drive: Drive, long_polls: int) -> list[tuple[str, object]]:
    return [
        ("/me", sync.Me(drive)),
        ("/tree", sync.Tree(drive)),
        ("/changes", sync.Changes(drive, long_polls)),
        ("/nodes/{node_id:id}", nodes.Node(drive)),
        ("/nodes/{node_id:id}/children", nodes.Children(drive)),
        ("/nodes/{node_id:id}/manifest", nodes.Manifest(drive)),
        ("/nodes/{node_id:id}/patch", commit.PatchFile(drive)),
        ("/nodes/{node_id:id}/versions", nodes.Versions(drive)),
        ("/nodes/{node_id:id}/versions/{number:id}/restore", nodes.Restore(drive)),
        ("/ids", nodes.Ids(drive)),
        ("/mkdir", nodes.Mkdir(drive)),
        ("/move", nodes.Move(drive)),
        ("/chunks/missing", chunks.Missing(drive)),
        ("/chunks/{hash}", chunks.Chunk(drive)),
        ("/commit", commit.Commit(drive)),
        ("/batch", batch.Batch(drive)),
        ("/users", admin.Users(drive)),
        ("/groups", admin.Groups(drive)),
        ("/groups/{group}", admin.Group(drive)),
        ("/groups/{group}/members", admin.Members(drive)),
        ("/groups/{group}/members/{user}", admin.Member(drive)),
        ("/shares", shares.Shares(drive)),
        ("/shares/received", shares.Received(drive)),
        ("/shares/{share_id:id}", shares.Share(drive)),
        ("/nodes/{node_id:id}/shares", shares.NodeShares(drive)),
    ]
