"""The batch resource: many tree operations (mkdir, commit, move, delete, mtime)
in one request. A client that made its changes offline, or a tar unpacking
thousands of files, replays them here at a fraction of a request each.

The operations are done in order, each exactly as its own request would do
it (its own transaction, the same checks and answers), until one is
refused: the answer lists what was done and why the next one was not; the
rest were not tried. A client settles the done ones and handles the refusal
as it would that request's error, so batching changes nothing but the cost.
"""

from __future__ import annotations

import falcon

from core import Drive, DriveError, UserId
from davserver.api.commit import MAX_COMMIT_JSON, commit
from davserver.api.errors import ApiError, as_api_error, error_detail
from davserver.api.models import (
    BatchError,
    BatchIn,
    BatchOp,
    BatchOut,
    BatchResult,
    CommitOp,
    DeleteOp,
    MkdirOp,
    MoveOp,
    NodeOut,
    PatchOp,
)
from davserver.api.nodes import delete, mkdir, move, set_mtime
from davserver.api.spec import operation
from davserver.api.sync import user_of
from davserver.api.wire import read_json, send


class Batch:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="Do tree operations in order until one is refused.", answer=BatchOut,
               body=BatchIn, errors=(413,))  # fmt: skip
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, BatchIn, MAX_COMMIT_JSON)
        user = user_of(req).id
        answer = BatchOut(results=[])
        for op in body.ops:
            try:
                node, status = self._do(user, op)
            except DriveError as exc:
                refusal = as_api_error(self.drive, user, exc)
            except ApiError as exc:
                refusal = exc
            else:
                answer.results.append(BatchResult(status=status, node=node))
                continue
            detail = error_detail(refusal).model_dump(exclude_unset=True)
            answer.error = BatchError(status=refusal.status_code, **detail)
            break
        send(resp, answer)

    def _do(self, user: UserId, op: BatchOp) -> tuple[NodeOut | None, int]:
        match op:
            case MkdirOp():
                return mkdir(self.drive, user, op)
            case CommitOp():
                return commit(self.drive, user, op)
            case MoveOp():
                return move(self.drive, user, op), 200
            case DeleteOp():
                delete(self.drive, user, op.node_id, op)
                return None, 204
            case PatchOp():
                return set_mtime(self.drive, user, op.node_id, op), 200
        raise AssertionError(op)
