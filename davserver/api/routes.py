"""The route table of the sync API: every path, relative to ``/api/v1``, and the
resource that answers it. The app and the OpenAPI document are both built
from this one list."""

from __future__ import annotations

from core import Drive
from davserver.api import batch, chunks, commit, nodes, sync


def routes(drive: Drive, long_polls: int) -> list[tuple[str, object]]:
    return [
        ("/me", sync.Me(drive)),
        ("/tree", sync.Tree(drive)),
        ("/changes", sync.Changes(drive, long_polls)),
        ("/nodes/{node_id:int}", nodes.Node(drive)),
        ("/nodes/{node_id:int}/children", nodes.Children(drive)),
        ("/nodes/{node_id:int}/manifest", nodes.Manifest(drive)),
        ("/nodes/{node_id:int}/patch", commit.PatchFile(drive)),
        ("/nodes/{node_id:int}/versions", nodes.Versions(drive)),
        ("/nodes/{node_id:int}/versions/{number:int}/restore", nodes.Restore(drive)),
        ("/ids", nodes.Ids(drive)),
        ("/mkdir", nodes.Mkdir(drive)),
        ("/move", nodes.Move(drive)),
        ("/chunks/missing", chunks.Missing(drive)),
        ("/chunks/{hash}", chunks.Chunk(drive)),
        ("/commit", commit.Commit(drive)),
        ("/batch", batch.Batch(drive)),
    ]
