"""Resources addressed by node id: a node, its children, its content's manifest,
its versions, the tree operations (mkdir, move, delete to the trash), and node
ids reserved for creates a client makes offline first."""

from __future__ import annotations

import falcon

from core import AlreadyCreated, Drive, NodeId, NodeRef, UserId, VersionId
from davserver.api.models import (
    DeleteQuery,
    IdsIn,
    IdsOut,
    ManifestOut,
    ManifestQuery,
    MkdirIn,
    MoveIn,
    NodeOut,
    NodesOut,
    PatchIn,
    VersionsOut,
    manifest_json,
    node_out,
    version_out,
)
from davserver.api.spec import operation
from davserver.api.sync import acting, user_of
from davserver.api.wire import read_json, read_query, send, send_body

NOT_FOUND = (404,)
WRITE_ERRORS = (404, 409, 413, 423)


class Node:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="The node.", answer=NodeOut, errors=NOT_FOUND)
    def on_get(self, req: falcon.Request, resp: falcon.Response, node_id: int) -> None:
        send(resp, node_out(self.drive.stat(user_of(req).id, NodeRef.by_id(node_id), locks=True)))

    @operation(summary="Set the modification time.", answer=NodeOut, body=PatchIn,
               errors=WRITE_ERRORS)  # fmt: skip
    def on_patch(self, req: falcon.Request, resp: falcon.Response, node_id: int) -> None:
        body = read_json(req, PatchIn)
        send(resp, set_mtime(self.drive, user_of(req).id, node_id, body))

    @operation(summary="Move the node (and its subtree) to the trash.", status=204,
               query=DeleteQuery, errors=(404, 409, 423))  # fmt: skip
    def on_delete(self, req: falcon.Request, resp: falcon.Response, node_id: int) -> None:
        delete(self.drive, user_of(req).id, node_id, read_query(req, DeleteQuery))
        resp.status = 204


class Children:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="The live children of a folder, by name.", answer=NodesOut,
               errors=(404, 409))  # fmt: skip
    def on_get(self, req: falcon.Request, resp: falcon.Response, node_id: int) -> None:
        children = self.drive.listdir(user_of(req).id, NodeRef.by_id(node_id), locks=True)
        send(resp, NodesOut(nodes=[node_out(state) for state in children]))


class Manifest:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="The chunks of the current (or a numbered) version.",
               answer=ManifestOut, query=ManifestQuery, errors=(404, 409))  # fmt: skip
    def on_get(self, req: falcon.Request, resp: falcon.Response, node_id: int) -> None:
        query = read_query(req, ManifestQuery)
        manifest = self.drive.manifest(user_of(req).id, NodeRef.by_id(node_id), query.version)
        send_body(resp, manifest_json(manifest))


class Versions:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="The file's versions, oldest first.", answer=VersionsOut,
               errors=(404, 409))  # fmt: skip
    def on_get(self, req: falcon.Request, resp: falcon.Response, node_id: int) -> None:
        found = self.drive.versions(user_of(req).id, NodeRef.by_id(node_id))
        send(resp, VersionsOut(versions=[version_out(info) for info in found]))


class Restore:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="Make an old version current again (as a new version).",
               answer=NodeOut, errors=(404, 409, 423, 507))  # fmt: skip
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, node_id: int, number: int
    ) -> None:
        restored = self.drive.restore_version(
            acting(user_of(req).id), NodeRef.by_id(node_id), number
        )
        send(resp, node_out(restored))


class Mkdir:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="Create a folder: 201; 200 a replay of a create with an id.",
               status=201, also=(200,), answer=NodeOut, body=MkdirIn,
               errors=WRITE_ERRORS)  # fmt: skip
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, *mkdir(self.drive, user_of(req).id, read_json(req, MkdirIn)))


class Ids:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="Reserve fresh node ids for creates that name them (mkdir, commit); "
               "409 limit_reached when you would hold over 100,000 at once.",
               answer=IdsOut, body=IdsIn, errors=(409,))  # fmt: skip
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, IdsIn)
        ids = self.drive.reserve_ids(user_of(req).id, body.count)
        send(resp, IdsOut(ids=list(ids)))


class Move:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="Move or rename a node; with overwrite, a file over a file becomes "
               "its new version.", answer=NodeOut, body=MoveIn,
               errors=(*WRITE_ERRORS, 507))  # fmt: skip
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, move(self.drive, user_of(req).id, read_json(req, MoveIn)))


# The tree operations themselves, shared with the batch resource.


def mkdir(drive: Drive, user: UserId, body: MkdirIn) -> tuple[NodeOut, int]:
    """The folder, and 201 (made) or 200 (a replay of a create with an id)."""
    new_id = NodeId(body.id) if body.id is not None else None
    place = NodeRef.child(body.parent_id, body.name)
    try:
        made = drive.mkdir(acting(user), place, mtime_ns=body.mtime_ns, new_id=new_id)
    except AlreadyCreated as replay:
        return node_out(drive.stat(user, NodeRef.by_id(replay.node_id), locks=True)), 200
    return node_out(made), 201


def move(drive: Drive, user: UserId, body: MoveIn) -> NodeOut:
    place = NodeRef.child(body.parent_id, body.name)
    moved = drive.move(acting(user), NodeRef.by_id(body.node_id), place, overwrite=body.overwrite)
    return node_out(moved)


def delete(drive: Drive, user: UserId, node_id: int, query: DeleteQuery) -> None:
    base = VersionId(query.base_version_id) if query.base_version_id is not None else None
    drive.delete(acting(user), NodeRef.by_id(node_id), base_version_id=base)


def set_mtime(drive: Drive, user: UserId, node_id: int, body: PatchIn) -> NodeOut:
    return node_out(drive.set_mtime(acting(user), NodeRef.by_id(node_id), body.mtime_ns))
