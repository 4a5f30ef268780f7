"""Resources for keeping a replica in step: who am I, the tree by pages, and the
change feed with long-polling."""

from __future__ import annotations

import threading

import falcon

from core import RESERVED_AT_ROOT, Drive, Principal, UserId, UserInfo
from davserver.api.errors import RETRY_SECONDS, ApiError
from davserver.api.models import (
    ChangesOut,
    ChangesQuery,
    MeOut,
    TreeOut,
    TreeQuery,
    change_out,
    node_out,
)
from davserver.api.spec import operation
from davserver.api.wire import read_query, send


def user_of(req: falcon.Request) -> UserInfo:
    user: UserInfo = req.context.user
    return user


def acting(user_id: UserId) -> Principal:
    """Who an API request acts for: the user, offering no WebDAV lock token, so the
    core checks every write against every WebDAV lock."""
    return Principal(user_id, lock_tokens=frozenset())


class Me:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="The user, their root folder, the journal cursor and the quota.",
               answer=MeOut)  # fmt: skip
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = self.drive.user_by_id(user_of(req).id)
        send(resp, MeOut(
            user=user.name, root_id=user.root_id, cursor=self.drive.cursor(user.id),
            quota=user.quota_bytes, used=user.used_bytes, server="drivegate", api_version=1,
            reserved_names=sorted(RESERVED_AT_ROOT),
        ))  # fmt: skip


class Tree:
    def __init__(self, drive: Drive) -> None:
        self.drive = drive

    @operation(summary="A page of the user's live nodes in id order (the root excluded), "
               "with the journal cursor read before the page.",
               answer=TreeOut, query=TreeQuery)  # fmt: skip
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = read_query(req, TreeQuery)
        page = self.drive.tree_page(user_of(req).id, query.after, query.limit)
        nodes = [node_out(state) for state in page.nodes]
        send(resp, TreeOut(cursor=page.cursor, nodes=nodes, next_after=page.next_after))


PER_USER_LONG_POLLS = 4
"""Long-polls one user may hold at once (a mount holds one; a few devices), so one
user cannot take every slot."""


class LongPollSlots:
    """At most ``total`` long-polls held at once, and at most ``per_user`` per user."""

    def __init__(self, total: int, per_user: int) -> None:
        self.total = total
        self.per_user = per_user
        self._held: dict[int, int] = {}
        self._lock = threading.Lock()

    def take(self, user_id: int) -> bool:
        with self._lock:
            mine = self._held.get(user_id, 0)
            if mine >= self.per_user or sum(self._held.values()) >= self.total:
                return False
            self._held[user_id] = mine + 1
            return True

    def give_back(self, user_id: int) -> None:
        with self._lock:
            left = self._held[user_id] - 1
            if left:
                self._held[user_id] = left
            else:
                del self._held[user_id]


class Changes:
    """Changes after a cursor. With ``wait`` and nothing to say yet, the request is
    held (on a cheroot worker thread) until a commit for the user or the timeout;
    at most ``long_polls`` requests are held at once, and ``PER_USER_LONG_POLLS``
    per user: the rest answer 503 with Retry-After."""

    def __init__(self, drive: Drive, long_polls: int) -> None:
        self.drive = drive
        self.slots = LongPollSlots(long_polls, min(long_polls, PER_USER_LONG_POLLS))

    @operation(summary="Changes after a cursor, each with its node's current state; "
               "long-polls with wait.",
               answer=ChangesOut, query=ChangesQuery, errors=(503,))  # fmt: skip
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = read_query(req, ChangesQuery)
        user = user_of(req).id
        page = self.drive.change_page(user, query.cursor, query.limit)
        if not page.changes and query.wait > 0:
            if not self.slots.take(user):
                retry = {"Retry-After": str(RETRY_SECONDS)}
                raise ApiError(503, "unavailable", "every long-poll slot you may hold is "
                               "taken; retry", headers=retry)  # fmt: skip
            try:
                moved = self.drive.wait_for_changes(user, query.cursor, query.wait)
            finally:
                self.slots.give_back(user)
            if moved > query.cursor:
                page = self.drive.change_page(user, query.cursor, query.limit)
        changes = [change_out(change) for change in page.changes]
        send(resp, ChangesOut(cursor=page.cursor, changes=changes, more=page.more))
