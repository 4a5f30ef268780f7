"""Share resources: the grants a user made (or others made on their nodes), the
grants they received, who has access to a node, and one grant by its id.

A grant's id exists only for its granter and its node's owner: for anyone
else, the grantee included, it is 404 exactly as an id no grant has (the
rules: ``core.shares``). Sharing beyond one's rights is 403 ``forbidden``
(the node is one the caller may read, so that reveals nothing).
"""

from __future__ import annotations

import falcon

from core import Drive, NodeRef, ShareInfo
from davserver.api.sharemodels import ShareIn, ShareOut, SharesOut, ShareUpdateIn, share_out
from davserver.api.spec import operation
from davserver.api.sync import user_of
from davserver.api.wire import read_json, send

GRANT_ERRORS = (403, 404, 409)


def _many(req: falcon.Request, found: list[ShareInfo]) -> SharesOut:
    return SharesOut(shares=[share_out(info, user_of(req).name) for info in found])


class Shares:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="The grants you made, and those others made on your nodes.",
               answer=SharesOut)  # fmt: skip
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, _many(req, self.drive.shares_given(user_of(req).id)))

    @operation(summary="Share a node with a user or a group: 201 + the grant; 403 beyond "
               "your rights, 409 a second grant to the same grantee (update it instead).",
               status=201, answer=ShareOut, body=ShareIn, errors=GRANT_ERRORS)  # fmt: skip
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, ShareIn)
        user = user_of(req)
        info = self.drive.share(
            user.id, NodeRef.by_id(body.node_id), user=body.user, group=body.group,
            role=body.role, reshare=body.reshare,
        )  # fmt: skip
        send(resp, share_out(info, user.name), 201)


class Received:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="The grants that reach you, to you or to one of your groups.",
               answer=SharesOut)  # fmt: skip
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, _many(req, self.drive.shares_received(user_of(req).id)))


class Share:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="A grant you made or one on your node.", answer=ShareOut,
               errors=(404,))  # fmt: skip
    def on_get(self, req: falcon.Request, resp: falcon.Response, share_id: int) -> None:
        user = user_of(req)
        send(resp, share_out(self.drive.share_by_id(user.id, share_id), user.name))

    @operation(summary="Change a grant's role or reshare right (you become its granter; "
               "403 beyond your rights, 409 while its node is in the trash).",
               answer=ShareOut, body=ShareUpdateIn, errors=GRANT_ERRORS)  # fmt: skip
    def on_patch(self, req: falcon.Request, resp: falcon.Response, share_id: int) -> None:
        body = read_json(req, ShareUpdateIn)
        user = user_of(req)
        info = self.drive.update_share_by_id(
            user.id, share_id, role=body.role, reshare=body.reshare
        )
        send(resp, share_out(info, user.name))

    @operation(summary="Revoke a grant: the grantee loses it at their next request.",
               status=204, errors=(404,))  # fmt: skip
    def on_delete(self, req: falcon.Request, resp: falcon.Response, share_id: int) -> None:
        self.drive.unshare_by_id(user_of(req).id, share_id)
        resp.status = 204


class NodeShares:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="Who has access to the node: the grants on it and above it.",
               answer=SharesOut, errors=(404,))  # fmt: skip
    def on_get(self, req: falcon.Request, resp: falcon.Response, node_id: int) -> None:
        found = self.drive.shares_of(user_of(req).id, NodeRef.by_id(node_id))
        send(resp, _many(req, found))
