"""Reading file content: offset → chunks by bisecting the version's manifest,
each chunk from memory, the disk cache or the server (one fetch per chunk at
a time, several chunks in parallel), and read-ahead for sequential readers.

A read only ever touches the chunks that hold the bytes asked for, plus the
read-ahead window once a handle reads sequentially; a first read in the
middle of a file fetches nothing around it.

A fetched chunk is served from memory at once and written to the disk cache
behind the reader's back (room reserved first, so the hard limit holds; at
most ``WRITES_BEHIND`` writes pending, then fetches wait for the disk).
Hydrating pinned files waits for the disk instead.

Whether the server is reachable is ``connectivity``'s; running jobs in
parallel is ``concurrency``'s.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio
from cachetools import LRUCache

from cdc.chunking import ChunkHash
from fusemount.apirecords import ChunkSpan, Manifest, Node, NodeId, VersionRef
from fusemount.cache import ChunkCache
from fusemount.client import SyncApi
from fusemount.concurrency import gather
from fusemount.connectivity import Connectivity
from fusemount.errors import CacheFull, ChunkCorrupt, MountError, NotFound, ServerUnreachable
from fusemount.replica import Replica

log = logging.getLogger(__name__)

PARALLEL_FETCHES = 8
MEMORY_BYTES = 64 * 1024 * 1024
READAHEAD_MIN = 2  # chunks ahead once a handle reads sequentially
READAHEAD_MAX = 8  # ~10 MiB with 1.25 MiB average chunks; must fit MEMORY_BYTES
SEQUENTIAL_SLACK = 4 * 1024 * 1024  # the kernel's parallel reads arrive slightly out of order
WRITES_BEHIND = 8  # chunks fetched but not yet in the disk cache (held in memory meanwhile)


@dataclass
class _Fetch:
    done: trio.Event = field(default_factory=trio.Event)
    data: bytes | None = None
    error: MountError | None = None


class ChunkSource:
    """Chunks by hash: memory, then the disk cache, then the server."""

    def __init__(
        self,
        api: SyncApi,
        cache: ChunkCache,
        connectivity: Connectivity,
        parallel: int = PARALLEL_FETCHES,
        memory_bytes: int = MEMORY_BYTES,
    ) -> None:
        self.api = api
        self.cache = cache
        self.connectivity = connectivity
        self.fetched = 0
        self._limiter = trio.CapacityLimiter(parallel)
        self._memory: OrderedDict[ChunkHash, bytes] = OrderedDict()
        self._memory_bytes = 0
        self._memory_limit = memory_bytes
        self._inflight: dict[ChunkHash, _Fetch] = {}
        self._nursery: trio.Nursery | None = None
        self._write_slots = trio.Semaphore(WRITES_BEHIND)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the nursery that background fetches (read-ahead, hydration) run in."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def slice(self, span: ChunkSpan, start: int, end: int, pinned: bool) -> bytes:
        """Bytes ``[start, end)`` of the chunk (offsets relative to the chunk)."""
        data = self._memory.get(span.hash)
        if data is not None:
            self._memory.move_to_end(span.hash)
            return data[start:end]
        cached = await self.cache.read(span.hash, start, end)
        if cached is not None:
            return cached
        return (await self.fetch(span, pinned))[start:end]

    @property
    def in_flight(self) -> int:
        """Chunk downloads running now (reads and read-ahead)."""
        return len(self._inflight)

    def is_local(self, digest: ChunkHash) -> bool:
        return digest in self._memory or self.cache.contains(digest)

    async def fetch(self, span: ChunkSpan, pinned: bool, *, wait_for_disk: bool = False) -> bytes:
        """The whole chunk from the server (joined with a fetch already running), then
        cached: written behind the caller's back unless ``wait_for_disk``."""
        while (pending := self._inflight.get(span.hash)) is not None:
            await pending.done.wait()
            if pending.error is not None:
                raise pending.error
            if pending.data is not None:
                await self._keep(span.hash, pending.data, pinned, wait_for_disk)
                return pending.data
        pending = self._inflight[span.hash] = _Fetch()
        try:
            data = await self._download(span)
            pending.data = data
            self._remember(span.hash, data)
        except MountError as exc:
            pending.error = exc
            raise
        finally:
            pending.done.set()
            del self._inflight[span.hash]
        await self._keep(span.hash, data, pinned, wait_for_disk)
        return data

    async def ensure_cached(self, span: ChunkSpan, pinned: bool) -> None:
        """Put the chunk in the disk cache (from memory if it is there, else from the server)."""
        data = self._memory.get(span.hash)
        if data is None:
            await self.fetch(span, pinned, wait_for_disk=True)
        else:
            await self._keep(span.hash, data, pinned, wait=True)

    async def _download(self, span: ChunkSpan) -> bytes:
        async with self._limiter:
            try:
                data = await self.api.chunk(span.hash)
            except ServerUnreachable as exc:
                self.connectivity.went_offline(str(exc))
                raise
        if not self.connectivity.online:
            self.connectivity.poke()
        if len(data) != span.length:
            log.error("chunk %s has %d bytes, its manifest says %d: refused",
                      span.hash, len(data), span.length)  # fmt: skip
            raise ChunkCorrupt(f"chunk {span.hash} does not have the length its manifest says")
        self.fetched += 1
        return data

    def _remember(self, digest: ChunkHash, data: bytes) -> None:
        if digest not in self._memory:
            self._memory[digest] = data
            self._memory_bytes += len(data)
        while self._memory_bytes > self._memory_limit and len(self._memory) > 1:
            _, dropped = self._memory.popitem(last=False)
            self._memory_bytes -= len(dropped)

    async def _keep(self, digest: ChunkHash, data: bytes, pinned: bool, wait: bool) -> None:
        """Write the chunk to the disk cache: now, or behind the caller's back."""
        try:
            if wait or self._nursery is None:
                await self.cache.put(digest, data, pinned)
                return
            await self._write_slots.acquire()
            try:
                size = self.cache.reserve(digest, len(data), pinned)
            except BaseException:
                self._write_slots.release()
                raise
            if size is None:
                self._write_slots.release()
                return
            self._nursery.start_soon(self._write_behind, digest, data, size)
        except CacheFull as exc:
            log.debug("not cached: %s", exc)

    async def _write_behind(self, digest: ChunkHash, data: bytes, size: int) -> None:
        try:
            await self.cache.write(digest, data, size)
        finally:
            self._write_slots.release()

    def prefetch(self, spans: list[ChunkSpan], pinned: bool) -> None:
        """Fetch these chunks in the background, if online and not already here or coming."""
        if self._nursery is None or not self.connectivity.online:
            return
        for span in spans:
            if span.hash in self._inflight or self.is_local(span.hash):
                continue
            if len(self._inflight) >= 2 * PARALLEL_FETCHES:
                break
            self._nursery.start_soon(self._prefetch_one, span, pinned)

    async def _prefetch_one(self, span: ChunkSpan, pinned: bool) -> None:
        try:
            await self.fetch(span, pinned)
        except MountError as exc:
            log.debug("read-ahead of %s failed: %s", span.hash, exc)


class ReadAhead:
    """Per open file: is the reader sequential, and how far ahead to fetch.

    A handle is sequential when it starts at offset 0 or reads on from where
    it left off (give or take the kernel's parallel requests arriving out of
    order); a first read anywhere else fetches nothing ahead.
    """

    def __init__(self) -> None:
        self.next_offset: int | None = None
        self.window = 0

    def advise(self, offset: int, size: int, manifest: Manifest) -> list[ChunkSpan]:
        if self.next_offset is None:
            sequential = offset == 0
        else:
            sequential = abs(offset - self.next_offset) <= SEQUENTIAL_SLACK
        if sequential and self.next_offset is not None:
            self.next_offset = max(self.next_offset, offset + size)
        else:
            self.next_offset = offset + size
        if not sequential:
            self.window = 0
            return []
        self.window = min(max(self.window * 2, READAHEAD_MIN), READAHEAD_MAX)
        return manifest.after(offset + size, self.window)


class FileReader:
    """Reads a file's bytes at the version the replica shows for it."""

    def __init__(self, api: SyncApi, replica: Replica, source: ChunkSource) -> None:
        self.api = api
        self.replica = replica
        self.source = source
        self._manifests: LRUCache[int, Manifest] = LRUCache(maxsize=256)
        self._fetching: dict[int, trio.Event] = {}

    async def manifest(self, node: Node) -> Manifest:
        """The manifest of the version the node shows: memory, replica, then server."""
        if node.version is None:
            raise NotFound(f"node {node.id} is not a file", "not_a_file")
        return await self.manifest_of(node.id, node.version, node.size)

    async def manifest_of(self, node_id: NodeId, version: VersionRef, size: int) -> Manifest:
        """The manifest of that version of the node (of ``size`` bytes): memory,
        replica, then server."""
        while True:
            manifest = self._manifests.get(version.id) or self.replica.manifest(version.id)
            if manifest is not None:
                self._manifests[version.id] = manifest
                return manifest
            pending = self._fetching.get(version.id)
            if pending is None:
                break
            await pending.wait()  # the kernel reads in parallel: one fetch serves them all
        self._fetching[version.id] = done = trio.Event()
        try:
            manifest = await self._fetch_manifest(node_id, version, size)
        finally:
            del self._fetching[version.id]
            done.set()
        self._manifests[version.id] = manifest
        return manifest

    async def _fetch_manifest(self, node_id: NodeId, version: VersionRef, size: int) -> Manifest:
        try:
            manifest = await self.api.manifest(node_id, version.number)
        except ServerUnreachable as exc:
            self.source.connectivity.went_offline(str(exc))
            raise
        if manifest.version.id != version.id or manifest.size != size:
            raise NotFound(f"version {version.number} of node {node_id} is gone")
        self.replica.store_manifest(manifest)
        return manifest

    def pinned(self, node: Node) -> bool:
        return self.replica.pins.pinned_by(node.id) is not None

    async def read(
        self, node: Node, offset: int, size: int, ahead: ReadAhead | None = None
    ) -> bytes:
        if size <= 0 or offset >= node.size:
            return b""
        manifest = await self.manifest(node)
        return await self.read_version(manifest, offset, size, ahead, self.pinned(node))

    async def read_version(
        self, manifest: Manifest, offset: int, size: int, ahead: ReadAhead | None = None,
        pinned: bool = False,
    ) -> bytes:  # fmt: skip
        """Bytes of the version ``manifest`` describes, whatever the node shows now."""
        spans = manifest.covering(offset, size)
        end = min(offset + size, manifest.size)
        if ahead is not None:
            self.source.prefetch(ahead.advise(offset, size, manifest), pinned)

        def part(span: ChunkSpan) -> Callable[[], Awaitable[bytes]]:
            start = max(offset, span.offset) - span.offset
            stop = min(end, span.end) - span.offset
            return lambda: self.source.slice(span, start, stop, pinned)

        parts = await gather([part(span) for span in spans])
        return b"".join(parts)
