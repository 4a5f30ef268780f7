"""Working copies: the local content of files being written
(``CACHE_DIR/work/<node id>``), one per file, shared by its open handles.

A working copy starts empty (a new or truncated file) or as a sparse file of
the node's size that holds none of its bytes: opening a file for writing
downloads nothing. ``local`` remembers which bytes the copy holds itself
(written, or zeros past an earlier end of file); every other byte is still
the ``origin`` version's, read through the chunk cache when asked for, so
editing 1 byte of a 1 GiB online-only file touches one chunk (the upload
then re-cuts only around the edit: see ``delta``).

``base`` is the server version the content derives from, which the upload
names as its compare-and-set base (it moves on when an upload commits while
the file stays open; the origin does not, its bytes are still the ones not
written). What a restart needs besides the sparse file, the origin (its
manifest, or only which version it is while nothing has needed the
manifest: opening a file and writing to it fetch nothing, not even that)
and the local ranges, is kept next to it in ``<node id>.json``,
written after the file's fsync and before the queue row that names it. A
working copy without a queued upload holds nothing the server lacks: it is
dropped after its upload and at start.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fusemount.apirecords import Manifest, Node, NodeId, VersionId, VersionRef
from fusemount.delta import Planned, plan
from fusemount.errors import CacheFull, MountError, UploadFailed
from fusemount.extents import Extents
from fusemount.reader import FileReader, ReadAhead

log = logging.getLogger(__name__)

RESERVE = 4 * 1024 * 1024  # bytes of the cache disk working copies leave free


@dataclass(frozen=True, slots=True)
class OriginRef:
    """The version the bytes not written come from, until its manifest is needed."""

    node_id: NodeId
    version: VersionRef
    size: int

    def to_json(self) -> dict[str, object]:
        return {"node_id": self.node_id, "size": self.size, "version": self.version.to_json()}

    @classmethod
    def from_json(cls, value: object) -> OriginRef:
        if not isinstance(value, dict) or not isinstance(value.get("version"), dict):
            raise ValueError(f"not an origin: {value!r}")
        node_id, size = value.get("node_id"), value.get("size")
        if not isinstance(node_id, int) or not isinstance(size, int) or size < 0:
            raise ValueError(f"not an origin: {value!r}")
        return cls(NodeId(node_id), VersionRef.from_json(value["version"]), size)


@dataclass
class WorkCopy:
    """One file's working copy (see the module docstring)."""

    node_id: NodeId
    base: VersionId
    size: int
    local: Extents
    # None: every byte below ``size`` is local. An OriginRef until a read of bytes
    # not written (or a chunk upload) fetches the manifest: a write needs none.
    origin: Manifest | OriginRef | None

    @property
    def complete(self) -> bool:
        """Whether the copy holds every byte itself."""
        return self.origin is None or self.local.covers(0, self.size)

    def state(self) -> dict[str, object]:
        return {
            "base": self.base,
            "size": self.size,
            "local": self.local.to_json(),
            "origin": self.origin.to_json() if isinstance(self.origin, Manifest) else None,
            "origin_ref": self.origin.to_json() if isinstance(self.origin, OriginRef) else None,
        }


class WorkCopies:
    """The working copies of one mount (see the module docstring)."""

    def __init__(self, cache_dir: Path, reader: FileReader) -> None:
        self.dir = cache_dir / "work"
        self.dir.mkdir(exist_ok=True)
        self.reader = reader
        self.copies: dict[NodeId, WorkCopy] = {}
        self._fds: dict[NodeId, int] = {}
        self._users: dict[NodeId, int] = {}

    def path(self, node_id: NodeId) -> Path:
        return self.dir / str(node_id)

    def _state_path(self, node_id: NodeId) -> Path:
        return self.dir / f"{node_id}.json"

    def has(self, node_id: NodeId) -> bool:
        return node_id in self.copies

    def base(self, node_id: NodeId) -> VersionId:
        return self.copies[node_id].base

    def rebase(self, node_id: NodeId, version: VersionId, *, only_from: VersionId | None = None
               ) -> None:  # fmt: skip
        """An upload committed ``version`` while the file stays open: edits go on from it
        (``only_from``: only if the copy's base is that one)."""
        copy = self.copies.get(node_id)
        if copy is not None and (only_from is None or copy.base == only_from):
            copy.base = version

    def adopt(self, source: NodeId, target: NodeId, base: VersionId) -> None:
        """``target`` takes ``source``'s working copy as its content, edited from
        ``base`` (a file renamed over another; neither open). ``save`` follows."""
        copy = self.copies.pop(source)
        with disk_errors():
            os.replace(self.path(source), self.path(target))
            self._state_path(target).unlink(missing_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.replace(self._state_path(source), self._state_path(target))
        copy.node_id, copy.base = target, base
        self.copies[target] = copy

    def keep_only(self, queued: dict[NodeId, VersionId]) -> None:
        """At start: keep the working copies with a queued upload, drop the rest."""
        for entry in self.dir.iterdir():
            name = entry.name
            node_id = NodeId(int(name)) if name.isdigit() else None
            if node_id is None or node_id not in queued or not entry.is_file():
                if not (name.endswith(".json") and name[:-5].isdigit()):
                    entry.unlink(missing_ok=True)
                continue
            try:
                self.copies[node_id] = self._load(node_id, queued[node_id], entry.stat().st_size)
            except (OSError, ValueError, KeyError, TypeError, MountError) as exc:
                # Its upload stops with "the working copy is gone" (see uploader).
                log.error("the working copy of node %s cannot be read back: %s", node_id, exc)
        for entry in self.dir.glob("*.json"):
            if NodeId(int(entry.stem)) not in self.copies:
                entry.unlink(missing_ok=True)

    def _load(self, node_id: NodeId, base: VersionId, size: int) -> WorkCopy:
        try:
            state = json.loads(self._state_path(node_id).read_text())
        except FileNotFoundError:  # a copy that held every byte when it was saved
            return WorkCopy(node_id, base, size, Extents([(0, size)]), None)
        origin: Manifest | OriginRef | None = None
        if state["origin"] is not None:
            origin = Manifest.from_json(state["origin"])
        elif state.get("origin_ref") is not None:
            origin = OriginRef.from_json(state["origin_ref"])
        local = Extents.from_json(state["local"])
        local.clip(size)
        if size > state["size"]:
            local.add(state["size"], size)  # written past the end after the last save
        return WorkCopy(node_id, base, size, local, origin)

    def check_room(self, size: int) -> None:
        """CacheFull (ENOSPC) unless ``size`` more bytes leave the disk its reserve: the
        replica and the upload queue must still be writable when working copies fill it
        (a delete, a close that queues an upload)."""
        with disk_errors():
            disk = os.statvfs(self.dir)
        if disk.f_bavail * disk.f_frsize < size + RESERVE:
            raise CacheFull("the cache disk is full (its last MiBs are kept for metadata)")

    def stat(self, node_id: NodeId) -> os.stat_result:
        fd = self._fds.get(node_id)
        return os.fstat(fd) if fd is not None else os.stat(self.path(node_id))

    def size(self, node_id: NodeId) -> int:
        return self.copies[node_id].size

    async def acquire(self, node: Node, empty: bool) -> int:
        """A descriptor of the node's working copy, made first if needed (``empty``:
        start from nothing, else from the server's content, fetched only as read).
        Pair with ``release``."""
        if node.id not in self.copies:
            # A file made here and not on the server yet has no version: base 0.
            base = node.version.id if node.version is not None else VersionId(0)
            origin = None
            if not empty and node.size and node.version is not None:
                origin = OriginRef(node.id, node.version, node.size)
            self._make(node.id, 0 if origin is None else node.size)
            size = 0 if origin is None else node.size
            self.copies[node.id] = WorkCopy(node.id, base, size, Extents(), origin)
        fd = self._fds.get(node.id)
        if fd is None:
            with disk_errors():
                fd = os.open(self.path(node.id), os.O_RDWR)
            self._fds[node.id] = fd
        self._users[node.id] = self._users.get(node.id, 0) + 1
        return fd

    def release(self, node_id: NodeId) -> None:
        left = self._users.get(node_id, 0) - 1
        if left > 0:
            self._users[node_id] = left
            return
        self._users.pop(node_id, None)
        fd = self._fds.pop(node_id, None)
        if fd is not None:
            os.close(fd)

    def in_use(self, node_id: NodeId) -> bool:
        return node_id in self._users

    def drop(self, node_id: NodeId) -> None:
        """Forget the working copy (after its upload, or when the file was deleted)."""
        self.copies.pop(node_id, None)
        fd = self._fds.pop(node_id, None)
        if fd is not None:
            os.close(fd)
        self._users.pop(node_id, None)
        self.path(node_id).unlink(missing_ok=True)
        self._state_path(node_id).unlink(missing_ok=True)

    # -- content ----------------------------------------------------------------------

    def write(self, node_id: NodeId, offset: int, data: bytes) -> int:
        """Write through an open descriptor (``acquire`` first)."""
        copy = self.copies[node_id]
        with disk_errors():
            written = os.pwrite(self._fds[node_id], data, offset)
        # Bytes between the old end and ``offset`` read as zeros: local too.
        copy.local.add(min(offset, copy.size), offset + written)
        copy.size = max(copy.size, offset + written)
        return written

    def truncate(self, node_id: NodeId, size: int) -> None:
        """Cut or extend (with zeros) through an open descriptor."""
        copy = self.copies[node_id]
        with disk_errors():
            os.ftruncate(self._fds[node_id], size)
        copy.local.clip(size)
        copy.local.add(copy.size, size)
        copy.size = size

    async def read(
        self, node_id: NodeId, offset: int, size: int, ahead: ReadAhead | None = None
    ) -> bytes:
        """The working copy's bytes: local ones from its file, the others from the origin."""
        copy = self._copy(node_id)
        end = min(offset + size, copy.size)
        if offset >= end:
            return b""
        if copy.origin is None:
            return self._pread(node_id, offset, end - offset)
        parts = []
        for start, stop, local in copy.local.split(offset, end):
            if local:
                parts.append(self._pread(node_id, start, stop - start))
            else:
                origin = await self.origin(node_id)
                parts.append(await self.reader.read_version(origin, start, stop - start, ahead))
        return b"".join(parts)

    async def resolve_origin(self, node_id: NodeId) -> None:
        """Fetch the origin's manifest now if the copy still has only its ref: before
        the copy changes hands (a rename over another file), whose source node, and
        with it the ref's way to its manifest, then goes away."""
        copy = self._copy(node_id)
        if isinstance(copy.origin, OriginRef):
            await self.origin(node_id)

    async def origin(self, node_id: NodeId) -> Manifest:
        """The manifest of the version the copy's bytes not written come from (fetched
        the first time it is needed)."""
        copy = self._copy(node_id)
        origin = copy.origin
        assert origin is not None, "a copy holding every byte has no origin"
        if isinstance(origin, OriginRef):
            manifest = await self.reader.manifest_of(origin.node_id, origin.version, origin.size)
            if copy.origin == origin:  # not dropped or replaced meanwhile
                copy.origin = manifest
            return manifest
        return origin

    def _copy(self, node_id: NodeId) -> WorkCopy:
        copy = self.copies.get(node_id)
        if copy is None:  # deleted while an upload read it
            raise UploadFailed(f"the working copy of node {node_id} is gone")
        return copy

    def _pread(self, node_id: NodeId, offset: int, size: int) -> bytes:
        fd = self._fds.get(node_id)
        if fd is not None:
            return os.pread(fd, size, offset)
        with open(self.path(node_id), "rb") as file:
            return os.pread(file.fileno(), size, offset)

    async def plan(self, node_id: NodeId) -> Planned:
        """The chunks of the working copy's content (only those of an incomplete copy
        that were not the origin's are cut afresh; see ``delta``)."""
        copy = self._copy(node_id)
        origin = await self.origin(node_id)

        async def read(offset: int, length: int) -> bytes:
            return await self.read(node_id, offset, length)

        return await plan(copy.size, origin.chunks, origin.size, copy.local, read)

    # -- durability -------------------------------------------------------------------

    def save(self, node_id: NodeId, durable: bool) -> None:
        """Record the working copy for the queue row that follows: the state file (what
        tells its bytes from the origin's; none while it holds every byte) and, if
        ``durable`` (an fsync), its bytes and names on disk. A close needs no more than
        what the kernel already has: a kill -9 of the mount, or a clean reboot, cannot
        lose that; a power cut can, as on a local disk, unless the writer fsyncs."""
        copy = self.copies[node_id]
        with disk_errors():
            if durable:
                fd = self._fds.get(node_id)
                if fd is not None:
                    os.fsync(fd)
                else:
                    with open(self.path(node_id), "rb+") as file:
                        os.fsync(file.fileno())
            state = self._state_path(node_id)
            if copy.complete:
                state.unlink(missing_ok=True)
            else:
                partial = state.with_suffix(".part")
                with open(partial, "w") as out:
                    # dumps, not dump: only the one-shot encoder is the C one (much faster
                    # for a big origin manifest, written at every close)
                    out.write(json.dumps(copy.state()))
                    out.flush()
                    if durable:
                        os.fsync(out.fileno())
                os.replace(partial, state)
            if durable:
                _sync_dir(self.dir)

    def _make(self, node_id: NodeId, size: int) -> None:
        """A sparse file of ``size`` bytes (made durable by ``save`` when an fsync asks)."""
        final = self.path(node_id)
        try:
            with open(final, "wb") as out:
                out.truncate(size)
        except OSError as exc:
            final.unlink(missing_ok=True)
            raise _disk_error(exc) from None


@contextlib.contextmanager
def disk_errors() -> Iterator[None]:
    """A full disk becomes CacheFull (ENOSPC to the writer); other OSErrors pass."""
    try:
        yield
    except OSError as exc:
        raise _disk_error(exc) from None


def _disk_error(exc: OSError) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return CacheFull(f"the cache disk is full: {exc.strerror}")
    return exc


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
