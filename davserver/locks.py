"""WebDAV locks in SQL: a WsgiDAV lock storage over ``core.LockTable``, and a
lock manager whose check-then-create is atomic across server processes.

WsgiDAV serialises lock acquisition with a process-local lock only; here the
check and the create run inside the ``dav-locks`` mutex, which every process
of the deployment shares. Timeouts are capped (``lock_timeout_seconds``,
default one hour): a client asking for more, for Infinite or for nothing
gets the cap, and renews with a refresh as Office does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from wsgidav.lock_man.lock_manager import (
    LockManager,
    generate_lock_token,
    normalize_lock_root,
    validate_lock,
)

from core import LockRecord, LockTable


def _as_wsgidav(record: LockRecord) -> dict[str, Any]:
    """A lock as WsgiDAV wants it: the owner XML as bytes (lxml refuses a str that
    carries an encoding declaration); SQL keeps it as text."""
    lock = record.as_dict()
    lock["owner"] = record.owner.encode("utf-8")
    return lock


class SqlLockStorage:
    """WsgiDAV's lock storage interface (see ``wsgidav.lock_man.lock_storage``) over SQL."""

    def __init__(self, table: LockTable, max_timeout: float) -> None:
        self.table = table
        self.max_timeout = max_timeout

    def __repr__(self) -> str:
        return "SqlLockStorage"

    def open(self) -> None:
        """Nothing to open: the table lives in the drive's database."""

    def close(self) -> None:
        """Nothing to close."""

    def cleanup(self) -> None:
        self.table.purge_expired()

    def clear(self) -> None:
        for record in self.table.all_live():
            self.table.remove(record.token)

    def _timeout(self, requested: Any) -> float:
        seconds = float(requested) if requested is not None else -1.0
        return self.max_timeout if seconds <= 0 or seconds > self.max_timeout else seconds

    def get(self, token: str) -> dict[str, Any] | None:
        record = self.table.get(token)
        return _as_wsgidav(record) if record is not None else None

    def create(self, path: str, lock: dict[str, Any]) -> dict[str, Any]:
        lock["root"] = normalize_lock_root(path)
        lock["timeout"] = self._timeout(lock.get("timeout"))
        lock["expire"] = time.time() + lock["timeout"]
        validate_lock(lock)
        lock["token"] = generate_lock_token()
        if isinstance(lock.get("owner"), bytes):  # WsgiDAV hands the owner XML over as bytes
            lock["owner"] = lock["owner"].decode("utf-8")
        self.table.create(LockRecord(**{key: lock[key] for key in LockRecord.__annotations__}))
        return lock

    def refresh(self, token: str, *, timeout: Any) -> dict[str, Any]:
        record = self.table.refresh(token, self._timeout(timeout))
        if record is None:
            raise ValueError(f"no lock {token}")
        return _as_wsgidav(record)

    def delete(self, token: str) -> bool:
        return self.table.remove(token)

    def get_lock_list(
        self, path: str, *, include_root: bool, include_children: bool, token_only: bool
    ) -> list[Any]:
        records = self.table.at(
            normalize_lock_root(path), include_root=include_root, include_children=include_children
        )
        return [r.token for r in records] if token_only else [_as_wsgidav(r) for r in records]


@dataclass
class PrefetchedLocks:
    """The direct locks at and below ``root``, by lock root."""

    root: str
    by_root: dict[str, list[dict[str, Any]]]

    def covers(self, url: str) -> bool:
        return url == self.root or url.startswith(self.root.rstrip("/") + "/")


class SqlLockManager(LockManager):
    """A lock manager whose acquire is atomic across processes.

    A listing asks for each member's locks; ``prefetch`` + ``using`` answer
    those from one query instead of one per member.
    """

    def __init__(self, storage: SqlLockStorage) -> None:
        super().__init__(storage)
        self.storage: SqlLockStorage = storage
        self.mutex = storage.table.mutex
        self._prefetched = threading.local()

    def prefetch(self, url: str) -> PrefetchedLocks:
        """The direct locks of ``url`` and of everything below it, in one query."""
        root = normalize_lock_root(url)
        found = PrefetchedLocks(root, {})
        for lock in self.storage.get_lock_list(
            root, include_root=True, include_children=True, token_only=False
        ):
            found.by_root.setdefault(lock["root"], []).append(lock)
        return found

    @contextmanager
    def using(self, prefetched: PrefetchedLocks | None) -> Iterator[None]:
        """Answer ``get_url_lock_list`` below the prefetched root from ``prefetched``
        (in this thread, while the block runs)."""
        self._prefetched.value = prefetched
        try:
            yield
        finally:
            self._prefetched.value = None

    def get_url_lock_list(self, url: str, *, recursive: bool = False) -> list[dict[str, Any]]:
        prefetched: PrefetchedLocks | None = getattr(self._prefetched, "value", None)
        if prefetched is not None and not recursive:
            normalized = normalize_lock_root(url)
            if prefetched.covers(normalized):
                return prefetched.by_root.get(normalized, [])
        locks: list[dict[str, Any]] = super().get_url_lock_list(url, recursive=recursive)
        return locks

    def __del__(self) -> None:
        """WsgiDAV's manager closes its storage here; ours owns nothing to close."""

    def acquire(self, **kwargs: Any) -> dict[str, Any]:
        with self.mutex.exclusive():
            lock: dict[str, Any] = super().acquire(**kwargs)
            return lock
