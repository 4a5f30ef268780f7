"""Whether the server answered lately: one ``Connectivity`` per mount, reported
to by every part that talks to the server (change feed, readers, uploads, tree
sync) and read by those that answer differently offline."""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

log = logging.getLogger(__name__)


class Connectivity:
    """Whether the server answered lately. The change feed and the readers both
    report; the change feed waits on ``reconnected`` while offline."""

    def __init__(self) -> None:
        self.online = False
        self.kick = trio.Event()
        self._listeners: list[Callable[[], None]] = []

    def on_online(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (it must not block) whenever the server is back."""
        self._listeners.append(listener)

    def went_offline(self, reason: str) -> None:
        if self.online:
            log.warning("server unreachable (%s): serving from the local replica and cache", reason)
        self.online = False

    def came_online(self) -> None:
        if not self.online:
            log.info("server reachable")
            for listener in self._listeners:
                listener()
        self.online = True
        self.kick.set()

    def poke(self) -> None:
        """Ask the change feed to retry now (a reader reached the server)."""
        self.kick.set()
