"""Keeping the replica fresh: the first load of the tree, then the change
feed (long-poll ``GET /changes``), applied page by page with its cursor;
each page's effects go to the file system (kernel cache invalidation) and
wake pin hydration. When the server cannot be reached the feed backs off
(0.25 s doubling to 5 s, or at once when a reader reaches the server),
then catches up from its cursor.

Folders that appear in a page (a restore, a copy) are listed before the page
is applied, so the replica holds their whole subtree whether or not the
server journals every node below them; listing and page commit together, or
not at all (an error leaves the cursor where it was).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import trio

from fusemount.apirecords import ChangePage, Me, Node, NodeId
from fusemount.client import SyncApi
from fusemount.connectivity import Connectivity
from fusemount.errors import (
    BadRequest,
    MountError,
    NotFound,
    ServerError,
    ServerUnreachable,
    SetupError,
    Unauthorized,
)
from fusemount.pins import Pins
from fusemount.replica import Effect, Replica

log = logging.getLogger(__name__)

WAIT_SECONDS = 30
BACKOFF = (0.25, 0.5, 1.0, 2.0, 4.0, 5.0)
ACCOUNT_REFRESH_SECONDS = 30.0
TREE_PAGE = 5000
UNAUTHORIZED_PAUSE = 60.0
REFETCHES = 1  # of a page that raced with the mount's own changes (see next_page)
COALESCE_SECONDS = 0.1

OnEffects = Callable[[list[Effect] | None], Awaitable[None]]


async def _ignore(effects: list[Effect] | None) -> None:
    return None


class FeedFollower:
    """Loads the tree, then follows the change feed for as long as the mount runs."""

    def __init__(self, api: SyncApi, replica: Replica, connectivity: Connectivity,  # noqa: PLR0917
                 pins: Pins | None = None, on_effects: OnEffects = _ignore,
                 pending: Callable[[], set[NodeId]] = set) -> None:  # fmt: skip
        self.api = api
        self.replica = replica
        self.connectivity = connectivity
        self.pins = pins
        self.on_effects = on_effects
        self.problem: str | None = None
        self._account_at = 0.0
        # Nodes with tree changes made here and not yet on the server (see treesync):
        # the replica shows them newer than the feed does, until they are sent.
        self.pending = pending

    async def start(self, me: Me | None) -> None:
        """Before mounting: load the tree or catch up (``me`` None: the server is unreachable,
        so the mount starts from the replica, which must have been loaded once)."""
        if me is None:
            if self.replica.cursor is None:
                raise SetupError("the server is unreachable and the tree was never loaded")
            self.connectivity.went_offline("unreachable at start")
            return
        self._remember(me)
        self.connectivity.came_online()
        if self.replica.root_id != me.root_id or self.replica.cursor is None:
            await self.load_tree(me)
        elif self.replica.cursor > me.cursor:
            log.warning("the server's journal is behind our cursor: reloading the tree")
            await self.load_tree(me)
        else:
            await self.catch_up()

    async def load_tree(self, me: Me) -> None:
        """Fetch the whole tree; changes from the first page's cursor make it exact."""
        try:
            root = await self.api.node(me.root_id)
        except NotFound:
            root = Node(me.root_id, None, "", "folder", 0, time.time_ns(), None)
        root = Node(root.id, None, "", "folder", 0, root.mtime_ns, None, root.locked)
        nodes: list[Node] = []
        cursor: int | None = None
        after: NodeId | None = None
        while True:
            page = await self.api.tree(after, TREE_PAGE)
            cursor = page.cursor if cursor is None else cursor
            nodes.extend(page.nodes)
            if page.next_after is None:
                break
            after = page.next_after
        self.replica.load_tree(root, nodes, cursor, keep=self.pending())
        log.info("loaded the tree: %d nodes, cursor %d", len(nodes) + 1, cursor)
        await self.on_effects(None)
        await self.catch_up()

    async def catch_up(self) -> None:
        """Apply every change already in the journal (no waiting)."""
        while (await self.next_page(wait=0)).more:
            pass

    def _cursor(self) -> int:
        cursor = self.replica.cursor
        assert cursor is not None, "the tree is loaded first"
        return cursor

    async def next_page(self, wait: float) -> ChangePage:
        """Fetch the changes after our cursor (waiting up to ``wait`` seconds for one)
        and apply them.

        Each change carries its node's state as of the fetch, so a page fetched while
        the mount itself changed some nodes (a rename's answer applied meanwhile) may
        show them older than the replica does: such a page is fetched again, and if the
        mount keeps changing the tree, applied without those nodes (the replica holds
        the mount's own, newer answer for them)."""
        for attempt in range(REFETCHES + 1):
            seen = self.replica.local_generation
            page = await self.api.changes(self._cursor(), wait=wait if attempt == 0 else 0)
            listed = await self._list_new_folders(page)
            if self.replica.local_generation == seen:
                break
        skip = self.replica.touched_since(seen) | self.pending()
        await self._apply(page, [node for node in listed if node.id not in skip], skip)
        return page

    async def _apply(self, page: ChangePage, listed: list[Node], skip: set[NodeId]) -> None:
        if not page.changes and page.cursor == self.replica.cursor:
            return
        effects = self.replica.apply(page.changes, page.cursor, skip)
        effects.extend(self.replica.upsert(listed))
        if not effects:
            return
        log.debug("applied %d changes up to cursor %d", len(page.changes), page.cursor)
        await self.on_effects(effects)
        if self.pins is not None and self.replica.pins.any():
            self.pins.wake()
        if time.monotonic() - self._account_at > 2.0:
            self._remember(await self.api.me())

    async def _list_new_folders(self, page: ChangePage) -> list[Node]:
        queue = [
            change.node for change in page.changes
            if change.node is not None and change.node.is_folder
            and self.replica.get(change.node.id) is None
        ]  # fmt: skip
        found: list[Node] = []
        seen: set[NodeId] = set()
        while queue:
            folder = queue.pop()
            if folder.id in seen:
                continue
            seen.add(folder.id)
            try:
                children = await self.api.children(folder.id)
            except NotFound:
                continue  # gone again later in the journal; a later change says so
            found.extend(children)
            queue.extend(child for child in children if child.is_folder)
        return found

    def _remember(self, me: Me) -> None:
        self._account_at = time.monotonic()
        self.replica.remember_account(me.quota, me.used)
        if me.reserved_names != self.replica.reserved_names:
            self.replica.remember_reserved_names(me.reserved_names)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow the change feed until cancelled, reconnecting by itself."""
        task_status.started()
        failures = 0
        while True:
            try:
                if not self.connectivity.online:
                    await self._reconnect()
                page = await self.next_page(wait=WAIT_SECONDS)
                if page.changes and not page.more:
                    # A burst of commits (an unpack, our own uploads) would wake the poll
                    # once per commit: a moment's pause takes them in one page.
                    await trio.sleep(COALESCE_SECONDS)
                if time.monotonic() - self._account_at > ACCOUNT_REFRESH_SECONDS:
                    self._remember(await self.api.me())
                failures = 0
                self.problem = None
            except ServerUnreachable as exc:
                self.connectivity.went_offline(str(exc))
                await self._pause(BACKOFF[min(failures, len(BACKOFF) - 1)])
                failures += 1
            except BadRequest as exc:
                log.warning("the server refused our cursor (%s): reloading the tree", exc)
                await self._reload()
            except Unauthorized as exc:
                self.problem = f"the server no longer accepts our login: {exc}"
                log.error("%s (remount with a new password or token)", self.problem)
                await self._pause(UNAUTHORIZED_PAUSE)
            except ServerError as exc:
                level = logging.INFO if exc.status == 503 else logging.ERROR
                log.log(level, "change feed: %s; retrying", exc)
                await self._pause(BACKOFF[-1])
            except MountError as exc:
                self.problem = str(exc)
                log.error("change feed: %s", exc)
                await self._pause(BACKOFF[-1])
            except Exception:  # a bug here must not take the whole mount down
                self.problem = "the change feed failed (see the mount log)"
                log.exception("change feed failed")
                await self._pause(UNAUTHORIZED_PAUSE)

    async def _reconnect(self) -> None:
        me = await self.api.me()
        if me.root_id != self.replica.root_id:
            raise SetupError("the server now shows a different drive for this user; remount")
        self._remember(me)
        self.connectivity.came_online()
        log.info("catching up from cursor %s", self.replica.cursor)
        if self.pins is not None:
            self.pins.wake()

    async def _reload(self) -> None:
        try:
            await self.load_tree(await self.api.me())
        except MountError as exc:
            self.problem = str(exc)
            await self._pause(BACKOFF[-1])

    async def _pause(self, seconds: float) -> None:
        self.connectivity.kick = trio.Event()
        with trio.move_on_after(seconds):
            await self.connectivity.kick.wait()
