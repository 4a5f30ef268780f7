"""The wired-up pieces every core operation needs, built once per process."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from core.db.engine import Database
from core.db.mutex import NamedMutex
from core.settings import Settings
from core.store import ChunkStore


@dataclass
class Backend:
    """Database, chunk store, collector lock, settings and a worker pool for
    hashing, compressing and storing chunks (hashlib and zstd release the GIL)."""

    settings: Settings
    db: Database
    store: ChunkStore
    lock: NamedMutex
    workers: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=4, thread_name_prefix="chunk")
    )

    def close(self) -> None:
        self.workers.shutdown(wait=True)
        self.store.close()
        self.db.dispose()
