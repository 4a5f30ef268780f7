"""Pins and file states: which files must stay available offline, hydrating
them in the background, and what ``user.drivegate.state`` says about a node.

A pinned node's state says whether it can be used offline yet: ``pinned, 3
files still downloading`` (or ``pinned, still downloading`` for a file) while
some of its bytes are on the server only, then ``pinned, available offline``.
A file with a working copy (written here) counts what it holds locally.

A pin is a row in the replica (``pins``); a file is pinned when it or one of
its folders is, so files that arrive later in a pinned folder are pinned too.
The chunks of every pinned file's current version are flagged pinned in the
cache and never evicted. Before pinning, the bytes the pins would need are
compared with the cache size; pins that cannot fit are refused up front
(ENOSPC) and, should pinned files grow later, hydration stops and says so in
``status`` instead of evicting pinned data to fetch more pinned data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import trio
from humanfriendly import format_size

from cdc.chunking import ChunkHash
from fusemount.apirecords import ChunkSpan, Manifest, Node, NodeId
from fusemount.cache import ChunkCache, disk_size
from fusemount.connectivity import Connectivity
from fusemount.errors import CacheFull, MountError, NotFound, ServerUnreachable
from fusemount.reader import FileReader
from fusemount.replica import Replica
from fusemount.workcopy import WorkCopy

log = logging.getLogger(__name__)

OFFLINE = "pinned, available offline"  # every byte of a pinned node is on this machine


@dataclass
class Hydration:
    """What pin hydration is doing (shown by ``drivegate status``)."""

    needed_bytes: int = 0
    files: int = 0  # pinned files, empty ones too
    pending_files: int = 0  # pinned files with bytes on the server only
    pending_bytes: int = 0
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """A node's content: bytes in total, bytes on this machine (in the cache, or in a
    working copy), and how many files still have bytes on the server only."""

    size: int
    cached: int
    missing_files: int = 0


def _human(size: int) -> str:
    return format_size(size, binary=True)  # as `drivegate status` and `user list` say sizes


def _files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"


class Pins:
    """Pin, unpin, describe, and hydrate pinned files in the background."""

    def __init__(
        self,
        replica: Replica,
        cache: ChunkCache,
        reader: FileReader,
        connectivity: Connectivity,
        local: Callable[[NodeId], WorkCopy | None] = lambda _node_id: None,
    ) -> None:
        self.replica = replica
        self.cache = cache
        self.reader = reader
        self.connectivity = connectivity
        self.hydration = Hydration()
        self.local = local  # the working copy of a file written here, if any
        # While hydrating: the chunks each pending file still waits for, by chunk.
        self._waiting: dict[ChunkHash, list[set[ChunkHash]]] = {}
        self._wake = trio.Event()
        self._wake.set()  # hydrate what is pinned as soon as the mount runs

    # -- states -------------------------------------------------------------------

    def is_pinned(self, node: Node) -> bool:
        return self.replica.pins.pinned_by(node.id) is not None

    def _known_manifest(self, node: Node) -> Manifest | None:
        if node.version is None:
            return None
        return self.replica.manifest(node.version.id)

    def usage(self, node: Node) -> Usage:
        """Total and local bytes of a file, or of every file below a folder."""
        return self._usage(self.replica.subtree_files(node.id) if node.is_folder else [node])

    def _usage(self, files: list[Node]) -> Usage:
        copies = [(file, self.local(file.id)) for file in files]
        # A complete working copy holds every byte; any other file is as its chunks are.
        manifests = {
            file.id: self._known_manifest(file)
            for file, copy in copies
            if copy is None or not copy.complete
        }
        hashes = {s.hash for m in manifests.values() if m is not None for s in m.chunks}
        cached = self.cache.cached_among(hashes)
        total = done = missing = 0
        for file, copy in copies:
            if copy is not None and copy.complete:
                total, done = total + copy.size, done + copy.size
                continue
            manifest = manifests[file.id]
            have = 0 if manifest is None else sum(
                s.length for s in manifest.chunks if s.hash in cached
            )  # fmt: skip
            size = file.size if copy is None else copy.size
            total, done = total + size, done + min(have, size)
            missing += have < (file.size if manifest is None else manifest.size)
        return Usage(total, done, missing)

    def state(self, node: Node) -> str:
        usage = self.usage(node)
        if self.is_pinned(node):
            if not usage.missing_files:
                return OFFLINE
            if node.is_folder:
                return f"pinned, {_files(usage.missing_files)} still downloading"
            return "pinned, still downloading"
        if usage.cached >= usage.size:
            return "cached"
        return "online-only" if usage.cached == 0 else "partial"

    # -- pin and unpin ------------------------------------------------------------

    def pin(self, node: Node) -> None:
        """Pin a file or folder; refused (CacheFull) if the pins could not fit in the cache."""
        if self.is_pinned(node):
            return
        files = self._unpinned_files(node)
        extra = sum(disk_size(f.size) for f in files)
        needed = self._pinned_bytes() + extra
        if needed > self.cache.limit:
            raise CacheFull(
                f"pinning {self.replica.path_of(node.id)} needs {_human(needed)} of pinned data,"
                f" more than the cache holds ({_human(self.cache.limit)})"
            )
        self.replica.pins.add(node.id)
        # Counted now, so that `status` says what is missing before hydration looks.
        self.hydration.files += len(files)
        self.hydration.pending_files += self._usage(files).missing_files
        log.info("pinned %s", self.replica.path_of(node.id))
        self.wake()

    def unpin(self, node: Node) -> None:
        """Unpin the node and any pins below it; refused if a folder above is pinned."""
        self.replica.pins.remove_below(node.id)
        holder = self.replica.pins.pinned_by(node.id)
        if holder is not None:
            raise CacheFull(f"still pinned through {self.replica.path_of(holder)}")
        self.cache.set_pinned(self.replica.pins.hashes())
        log.info("unpinned %s", self.replica.path_of(node.id))
        self.wake()

    def _unpinned_files(self, node: Node) -> list[Node]:
        files = self.replica.subtree_files(node.id) if node.is_folder else [node]
        pinned = {f.id for f in self.replica.pins.files()}
        return [f for f in files if f.id not in pinned]

    def _pinned_bytes(self) -> int:
        """Bytes the current pins need: known manifests exactly, the others by size."""
        hashes: dict[ChunkHash, int] = {}
        unknown = 0
        for file in self.replica.pins.files():
            manifest = self._known_manifest(file)
            if manifest is None:
                unknown += disk_size(file.size)
                continue
            for span in manifest.chunks:
                hashes[span.hash] = disk_size(span.length)
        return sum(hashes.values()) + unknown

    # -- hydration ----------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            try:
                await self.hydrate()
            except ServerUnreachable:
                log.info("pin hydration waits for the server")
            except MountError as exc:
                self.hydration.problem = str(exc)
                log.warning("pin hydration stopped: %s", exc)
            except Exception:  # a bug here must not take the whole mount down
                log.exception("pin hydration failed")
                self.hydration.problem = "pin hydration failed (see the mount log)"

    async def hydrate(self) -> None:
        """Fetch every chunk of every pinned file that is not cached yet."""
        manifests: list[Manifest] = []
        unknown = 0
        limiter = trio.CapacityLimiter(8)

        async def fetch(file: Node) -> None:
            nonlocal unknown
            async with limiter:
                try:
                    manifests.append(await self.reader.manifest(file))
                except ServerUnreachable:
                    unknown += 1
                except NotFound:
                    pass  # replaced meanwhile: the change feed brings the new version
                except MountError as exc:
                    unknown += 1
                    self.hydration.problem = str(exc)

        pinned = self.replica.pins.files()
        async with trio.open_nursery() as nursery:
            for file in pinned:
                if file.size:
                    nursery.start_soon(fetch, file)
        spans = {s.hash: s for m in manifests for s in m.chunks}
        self.cache.set_pinned(spans)
        status = self.hydration
        status.needed_bytes = sum(disk_size(s.length) for s in spans.values())
        status.files = len(pinned)
        status.problem = None
        missing = self._count_missing(manifests, spans, unknown)
        if status.needed_bytes > self.cache.limit:
            status.problem = (
                f"pinned data ({_human(status.needed_bytes)}) does not fit in the cache"
                f" ({_human(self.cache.limit)}): raise --cache-size or unpin something"
            )
            log.warning("%s", status.problem)
            return
        if missing:
            log.info("hydrating %d pinned chunks (%s)", len(missing), _human(status.pending_bytes))
            await self._fetch_all(missing)
            missing = self._count_missing(manifests, spans, unknown)
            if missing:
                status.problem = f"{len(missing)} pinned chunks could not be cached (disk full?)"
                log.warning("%s", status.problem)
        if unknown:
            raise ServerUnreachable("manifests of pinned files could not be fetched")

    def _count_missing(self, manifests: list[Manifest], spans: dict[ChunkHash, ChunkSpan],
                       unknown: int) -> list[ChunkSpan]:  # fmt: skip
        cached = self.cache.cached_among(spans)
        missing = [s for h, s in spans.items() if h not in cached]
        self._waiting = {}
        pending = 0
        for manifest in manifests:
            left = {s.hash for s in manifest.chunks if s.hash not in cached}
            pending += bool(left)
            for digest in left:
                self._waiting.setdefault(digest, []).append(left)
        self.hydration.pending_bytes = sum(s.length for s in missing)
        self.hydration.pending_files = unknown + pending
        return missing

    def _fetched(self, digest: ChunkHash) -> None:
        """A chunk is cached: files that waited for it alone are no longer pending."""
        for left in self._waiting.pop(digest, []):
            left.discard(digest)
            if not left:
                self.hydration.pending_files -= 1

    async def _fetch_all(self, missing: list[ChunkSpan]) -> None:
        limiter = trio.CapacityLimiter(4)
        failures: list[MountError] = []

        async def one(span: ChunkSpan) -> None:
            async with limiter:
                try:
                    await self.reader.source.ensure_cached(span, pinned=True)
                except MountError as exc:
                    failures.append(exc)
                    return
            self.hydration.pending_bytes -= span.length
            self._fetched(span.hash)

        async with trio.open_nursery() as nursery:
            for span in missing:
                nursery.start_soon(one, span)
        if failures:
            raise failures[0]
