"""The commit resources: a manifest of chunks already on the server becomes a
file's new version (compare-and-set on the base version, lock-aware); or a
patch, a few changed bytes of a file the server re-cuts itself (core.patch)."""

from __future__ import annotations

import falcon

from core import Drive, NodeId, Patch, Splice, UserId, VersionId, WriteTarget
from davserver.api.errors import bad_request
from davserver.api.models import CommitIn, NodeOut, PatchQuery, node_out
from davserver.api.spec import operation
from davserver.api.sync import user_of
from davserver.api.wire import OCTETS, read_body, read_json, read_query, require_type, send

MAX_COMMIT_JSON = 16 * 1024 * 1024  # ~180,000 chunks: files up to ~200 GiB
MAX_PATCH_BODY = 16 * 1024 * 1024  # core.patch.MAX_PATCH_BYTES


class Commit:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="Commit a manifest: 201 a new file, 200 a new version of a file "
               "(or a replay of a create with an id: nothing committed).",
               status=201, also=(200,), answer=NodeOut, body=CommitIn,
               errors=(404, 409, 413, 423, 507))  # fmt: skip
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, *commit(self.drive, user_of(req).id, read_json(req, CommitIn, MAX_COMMIT_JSON)))


def commit(drive: Drive, user: UserId, body: CommitIn) -> tuple[NodeOut, int]:
    """The file, and 201 (a new file) or 200 (a new version, or a replay of a create)."""
    chunks = [(chunk.hash, chunk.length) for chunk in body.chunks]
    splice = None if body.splice is None else Splice(body.splice.start, body.splice.end)
    state, created = drive.commit(commit_target(user, body), chunks, body.size, body.sha256, splice)
    return node_out(state), 201 if created else 200


def commit_target(user: UserId, body: CommitIn) -> WriteTarget:
    """Where the commit goes: an existing file by id (with its base version), or a
    name in a folder (new, or any file there unless ``create_only`` or ``id``);
    ``CommitIn`` has checked that the body is one or the other."""
    return WriteTarget(
        user_id=user,
        node_id=NodeId(body.node_id) if body.node_id is not None else None,
        parent_id=NodeId(body.parent_id) if body.parent_id is not None else None,
        name=body.name,
        base_version_id=VersionId(body.base_version_id) if body.base_version_id else None,
        create_only=body.create_only,
        mtime_ns=body.mtime_ns,
        origin="api",
        check_locks=True,
        lock_token=body.lock_token,
        new_id=NodeId(body.id) if body.id is not None else None,
    )


class PatchFile:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="Write a few bytes over the current version (the body: the bytes of "
               "the ranges, back to back) and set the size; the server re-cuts the chunks "
               "around them. 200 with the file's new version.",
               answer=NodeOut, query=PatchQuery, upload=True,
               errors=(404, 409, 413, 415, 423, 507))  # fmt: skip
    def on_post(self, req: falcon.Request, resp: falcon.Response, node_id: int) -> None:
        require_type(req, OCTETS)  # even with no body: a truncate is a change
        query = read_query(req, PatchQuery)
        body = read_body(req, MAX_PATCH_BODY)
        target = WriteTarget(
            user_id=user_of(req).id,
            node_id=NodeId(node_id),
            base_version_id=VersionId(query.base_version_id),
            mtime_ns=query.mtime_ns,
            origin="api",
            check_locks=True,
            lock_token=query.lock_token,
        )
        send(resp, node_out(self.drive.patch(target, Patch(query.size, ranges(query, body)))))


def ranges(query: PatchQuery, body: bytes) -> list[tuple[int, bytes]]:
    """The patch's ranges with their bytes, cut from the body (400 unless the lengths
    add up to the body's)."""
    cut: list[tuple[int, bytes]] = []
    position = 0
    for pair in filter(None, query.ranges.split(",")):
        offset, length = (int(part) for part in pair.split(":"))
        cut.append((offset, body[position : position + length]))
        position += length
    if position != len(body):
        raise bad_request(f"the ranges hold {position} bytes; the body has {len(body)}")
    return cut
