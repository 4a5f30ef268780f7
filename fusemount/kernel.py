"""Telling the kernel what it caches that is no longer so: entries, attributes
and page caches, sent by one long-lived worker thread. Which notices a change
calls for is ``inodes``'s to say.

Why a thread: invalidating can block until a related FUSE request is answered
(inside a request that changed the tree the kernel holds the folders' locks
that invalidating needs), and requests are answered by the trio loop. So the
loop never calls ``pyfuse3.invalidate_*`` itself: it queues notices, and the
worker sends them in order. ``send`` returns at once (for request handlers);
``changed`` waits until its notices went out (for the change feed) and stops
waiting when cancelled, so a stopping mount never waits on the kernel.
No request handler waits for the worker, so a notice that blocks on a request
only holds back the notices queued after it until that request is answered.

Before ``start`` (in-process tests, or before mounting) notices are dropped:
there is no kernel to tell.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import threading

import pyfuse3
import trio

from fusemount.apirecords import NodeId
from fusemount.inodes import Inodes, Notice
from fusemount.replica import Effect

log = logging.getLogger(__name__)

_Batch = tuple[list[Notice], trio.lowlevel.TrioToken | None, trio.Event | None]


class Kernel:
    """The one place that sends invalidation notices (see the module docstring)."""

    def __init__(self, inodes: Inodes) -> None:
        self.inodes = inodes
        self._batches: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None

    def start(self) -> None:
        """Mounted: from now on notices go to the kernel."""
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="invalidate", daemon=True)
            self._worker.start()

    def stop(self) -> None:
        """Unmounting: the worker ends after the notices queued so far (not waited for:
        a kernel that no longer answers must not hold up the unmount)."""
        if self._worker is not None:
            self._batches.put(None)
            self._worker = None

    def tell(self, effects: list[Effect], *extra: Notice) -> None:
        """What these changes call for, and ``extra``, without waiting (for requests
        and the background work that changes the tree)."""
        self.send([*self.inodes.notices(effects), *extra])

    async def changed(self, effects: list[Effect] | None) -> None:
        """What the change feed's changes call for (None: everything), sent before this returns."""
        await self.deliver(self.inodes.notices(effects))

    def forget_pages(self, node_id: NodeId) -> None:
        """The kernel's cached pages of the file are not its content any more."""
        self.send([("inode", self.inodes.inode_of(node_id), False)])

    def send(self, notices: list[Notice]) -> None:
        """Queue the notices and return at once (safe inside a request handler)."""
        if notices and self._worker is not None:
            self._batches.put((notices, None, None))

    async def deliver(self, notices: list[Notice]) -> None:
        """Queue the notices and wait until the worker has sent them (or until cancelled)."""
        if not notices or self._worker is None:
            return
        done = trio.Event()
        self._batches.put((notices, trio.lowlevel.current_trio_token(), done))
        await done.wait()

    def _work(self) -> None:
        while (batch := self._batches.get()) is not None:
            notices, token, done = batch
            try:
                _send(notices)
            except Exception:  # the worker outlives a bad batch
                log.exception("invalidating %s", notices)
            if token is not None and done is not None:
                with contextlib.suppress(trio.RunFinishedError):  # the mount stopped
                    token.run_sync_soon(done.set)


def _send(notices: list[Notice]) -> None:
    for notice in notices:
        try:
            if notice[0] == "entry":
                pyfuse3.invalidate_entry(notice[1], notice[2])
            else:
                pyfuse3.invalidate_inode(notice[1], attr_only=notice[2])
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # ENOENT: the kernel did not have it cached
                log.debug("invalidating %s: %s", notice, exc)
