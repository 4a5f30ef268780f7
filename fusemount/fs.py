"""The pyfuse3 operations: thin handlers over the replica (metadata), the
reader (content) and the pins (xattrs). ``errno_for`` is the one seam from
the mount's errors to errnos; nothing else here raises ``FUSEError``
except for plain file-system answers (ENOENT, ENOTDIR, EROFS, …).

Inode numbers are the server's node ids; the root folder's id and
``ROOT_INODE`` swap places (an involution, so the mapping is stable across
remounts and needs no table). The kernel's lookup counts are kept exactly
(``lookup``, ``readdirplus`` replies, ``forget``); a node deleted on the
server while the kernel still knows it stays answerable as a "ghost" until
forgotten. When the change feed changes the replica, ``changed`` tells the
kernel which entries, attributes and page caches to drop.

Tree changes (mkdir, create, rmdir, unlink, rename, mtime) are made locally
first through ``namespace`` (the replica at once, the server from the tree
log in the background); the kernel is told what changed from a thread
(``later``), as it holds locks the invalidation needs until the request is
answered. A file renamed over another takes the target's place and inode
(the target's history grows by one version). Content writes go to the
file's working copy (``workcopy``); ``flush``/``fsync`` make it durable and
queue its upload (``uploads``) before they return, and ``uploader`` sends it
once no handle writes the file. While a working copy exists, reads, size and
mtime come from it. Symlinks, hard links and special files answer EROFS.
There is no ``fallocate``: pyfuse3 has no such handler, so the kernel answers
EOPNOTSUPP itself and glibc's ``posix_fallocate`` falls back to writes
(docs/mount.md, "Preallocation").
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import logging
import os
import sqlite3
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import pyfuse3
import trio

from fusemount.connectivity import Connectivity
from fusemount.control import Control
from fusemount.errors import (
    BadRequest,
    CacheFull,
    ChunkCorrupt,
    Conflict,
    Locked,
    MountError,
    NotFound,
    QuotaExceeded,
    ServerUnreachable,
    Throttled,
    Unauthorized,
    UploadFailed,
    XattrError,
)
from fusemount.namespace import Namespace
from fusemount.reader import FileReader, ReadAhead
from fusemount.records import Node, NodeId, VersionId
from fusemount.replica import Effect, Replica, normalize
from fusemount.uploader import Uploader
from fusemount.uploads import UploadQueue
from fusemount.workcopy import WorkCopies, disk_errors

log = logging.getLogger(__name__)

TIMEOUT = 60.0  # the change feed invalidates what changes; this is only a safety net
BLOCK = 4096
OFFLINE_ERRNO = errno.EHOSTDOWN
NAME_MAX = 255  # bytes, as statfs says
RENAME_NOREPLACE = 1
_CONFLICTS = {
    "invalid_move": errno.EINVAL,
    "not_a_folder": errno.ENOTDIR,
    "not_a_file": errno.EISDIR,
}

P = ParamSpec("P")
T = TypeVar("T")
Notice = tuple[Literal["entry"], int, bytes] | tuple[Literal["inode"], int, bool]


def errno_for(exc: MountError) -> int:
    """The errno a failed operation answers (documented in docs/mount.md)."""
    match exc:
        case XattrError():
            return exc.errno
        case ServerUnreachable():
            return OFFLINE_ERRNO
        case ChunkCorrupt():
            return errno.EIO
        case NotFound():
            return errno.ESTALE
        case Unauthorized() | Throttled():
            return errno.EACCES
        case CacheFull():
            return errno.ENOSPC
        case QuotaExceeded():
            return errno.EDQUOT
        case Locked():
            return errno.EACCES  # a WebDAV lock makes the node read-only here
        case Conflict():
            return _CONFLICTS.get(exc.code, errno.EEXIST)
        case BadRequest():
            return errno.EINVAL
    return errno.EIO


def _answer(
    method: Callable[Concatenate[DriveFs, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[DriveFs, P], Coroutine[Any, Any, T]]:
    """Turn the mount's errors into errnos; anything unexpected is logged and answers EIO."""

    async def handler(self: DriveFs, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, *args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except MountError as exc:
            code = errno_for(exc)
            if code == errno.EIO:
                level = logging.ERROR
            elif isinstance(exc, XattrError):
                level = logging.DEBUG  # ls -l asks every file for attributes it lacks
            else:
                level = logging.INFO
            log.log(level, "%s: %s (%s)", method.__name__, exc, errno.errorcode.get(code, code))
            raise pyfuse3.FUSEError(code) from None
        except Exception:
            log.exception("%s failed", method.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None

    functools.update_wrapper(handler, method)
    return handler


def _name(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


@dataclass
class OpenFile:
    node_id: NodeId
    ahead: ReadAhead = field(default_factory=ReadAhead)
    fd: int | None = None  # the working copy, for a handle open for writing
    dirty: bool = False  # written since the last flush/fsync


@dataclass
class WriteBack:
    """The write side's parts: working copies, the durable queue, the uploader."""

    work: WorkCopies
    queue: UploadQueue
    uploader: Uploader
    delay: float = 2.0  # seconds after a close before the upload starts


class DriveFs(pyfuse3.Operations):
    """The mount's file system (see the module docstring)."""

    supports_dot_lookup = True
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, replica: Replica, reader: FileReader, control: Control,
                 connectivity: Connectivity, *, namespace: Namespace,
                 writeback: WriteBack) -> None:  # fmt: skip
        super().__init__()
        self.replica = replica
        self.namespace = namespace
        self.work = writeback.work
        self.queue = writeback.queue
        self.uploader = writeback.uploader
        self.upload_delay = writeback.delay
        self._unlinked: set[NodeId] = set()  # deleted while open for writing
        self.reader = reader
        self.control = control
        self.connectivity = connectivity
        self.kernel = False  # True once mounted: then `changed` notifies the kernel
        self.uid, self.gid = os.getuid(), os.getgid()
        self.lookups: Counter[int] = Counter()
        self._ghosts: dict[int, Node] = {}
        # A file renamed over another: the kernel moved the source's inode to the name
        # until it takes our invalidation; meanwhile that inode stands for the target.
        self._stand_ins: dict[int, NodeId] = {}
        self._files: dict[int, OpenFile] = {}
        self._fhs = itertools.count(1)

    # -- inodes ---------------------------------------------------------------------

    def _root(self) -> NodeId:
        root = self.replica.root_id
        assert root is not None, "the replica is loaded before the mount"
        return root

    def inode_of(self, node_id: int) -> int:
        root = self._root()
        if node_id == root:
            return pyfuse3.ROOT_INODE
        return root if node_id == pyfuse3.ROOT_INODE else node_id

    def node_id_of(self, inode: int) -> NodeId:
        return NodeId(self.inode_of(inode))  # the mapping is its own inverse

    def _node(self, inode: int) -> Node:
        node = self.replica.get(self.node_id_of(inode))
        if node is None and inode in self._stand_ins:
            node = self.replica.get(self._stand_ins[inode])
        node = node or self._ghosts.get(inode)
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return node

    def _attrs(self, node: Node) -> pyfuse3.EntryAttributes:
        attrs = pyfuse3.EntryAttributes()
        attrs.st_ino = self.inode_of(node.id)
        attrs.generation = 0
        attrs.entry_timeout = TIMEOUT
        attrs.attr_timeout = TIMEOUT
        if node.is_folder:
            attrs.st_mode = stat.S_IFDIR | (0o555 if node.locked else 0o755)
            attrs.st_nlink = 2
            attrs.st_size = 0
        else:
            attrs.st_mode = stat.S_IFREG | (0o444 if node.locked else 0o644)
            attrs.st_nlink = 1
            attrs.st_size = node.size
            local = self._local_stat(node.id)
            if local is not None:
                attrs.st_size = local.st_size
        attrs.st_uid, attrs.st_gid = self.uid, self.gid
        attrs.st_blksize = 128 * 1024
        attrs.st_blocks = -(-attrs.st_size // 512)
        attrs.st_atime_ns = attrs.st_mtime_ns = attrs.st_ctime_ns = node.mtime_ns
        if not node.is_folder and (local := self._local_stat(node.id)) is not None:
            attrs.st_atime_ns = attrs.st_mtime_ns = attrs.st_ctime_ns = local.st_mtime_ns
        return attrs

    def _local_stat(self, node_id: NodeId) -> os.stat_result | None:
        """The working copy's size and mtime, while the file has one."""
        if not self.work.has(node_id):
            return None
        try:
            return self.work.stat(node_id)
        except OSError:
            return None

    def _entry(self, node: Node) -> pyfuse3.EntryAttributes:
        attrs = self._attrs(node)
        self.lookups[attrs.st_ino] += 1
        return attrs

    # -- metadata -------------------------------------------------------------------

    @_answer
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        parent = self._node(parent_inode)
        if name == b".":
            return self._entry(parent)
        if name == b"..":
            grand = None if parent.parent_id is None else self.replica.get(parent.parent_id)
            return self._entry(grand or parent)
        if not parent.is_folder:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        child = self.replica.child(parent.id, self._child_name(name))
        if child is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._entry(child)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for inode, count in inode_list:
            left = self.lookups[inode] - count
            if left > 0:
                self.lookups[inode] = left
            else:
                del self.lookups[inode]
                self._ghosts.pop(inode, None)
                self._stand_ins.pop(inode, None)

    @_answer
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attrs(self._node(inode))

    @_answer
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        if not self._node(inode).is_folder:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return inode

    @_answer
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        # Offsets are node ids: children come in id order, so an entry created or
        # deleted between two calls never makes another one repeat or vanish.
        folder = self._node(fh)
        after = start_id
        while children := self.replica.children(folder.id, after=after, limit=500):
            for child in children:
                if not pyfuse3.readdir_reply(
                    token, _name(child.name), self._attrs(child), child.id
                ):
                    return
                self.lookups[self.inode_of(child.id)] += 1  # readdirplus counts as a lookup
                after = child.id

    async def releasedir(self, fh: int) -> None:
        return None

    @_answer
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        quota, used = self.replica.account()
        total = quota if quota is not None else max(used, 0) + (1 << 50)  # no quota: "1 PiB free"
        data = pyfuse3.StatvfsData()
        data.f_bsize = data.f_frsize = BLOCK
        data.f_blocks = total // BLOCK
        data.f_bfree = data.f_bavail = max(total - used, 0) // BLOCK
        data.f_files = self.replica.count()
        data.f_ffree = data.f_favail = 1 << 32
        data.f_namemax = 255
        return data

    # -- content --------------------------------------------------------------------

    @_answer
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        node = self._node(inode)
        if node.is_folder:
            raise pyfuse3.FUSEError(errno.EISDIR)
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            self._writable(node)
            handle = await self._open_for_writing(node, truncate=bool(flags & os.O_TRUNC))
            fh = next(self._fhs)
            self._files[fh] = handle
            return pyfuse3.FileInfo(fh=fh, keep_cache=False)
        if node.size and self.connectivity.online and not self.work.has(node.id):
            # Fetched now, an open handle can still read this version if the file
            # is deleted or replaced meanwhile (the server forgets trashed manifests).
            with contextlib.suppress(MountError):
                await self.reader.manifest(node)
        fh = next(self._fhs)
        self._files[fh] = OpenFile(node.id)
        # The page cache may outlive this handle: `changed` drops it when a new version arrives.
        return pyfuse3.FileInfo(fh=fh, keep_cache=not self.work.has(node.id))

    async def _open_for_writing(self, node: Node, truncate: bool) -> OpenFile:
        fd = await self.work.acquire(node, empty=truncate)
        handle = OpenFile(node.id, fd=fd)
        if truncate and self.work.size(node.id):
            self.work.truncate(node.id, 0)
            handle.dirty = True
        return handle

    @_answer
    async def read(self, fh: int, off: int, size: int) -> bytes:
        handle = self._files[fh]
        inode = self.inode_of(handle.node_id)
        while True:
            if self.work.has(handle.node_id):
                return await self.work.read(handle.node_id, off, size, handle.ahead)
            node = self._node(inode)
            data = await self.reader.read(node, off, size, handle.ahead)
            # A new version may have arrived while the chunks were fetched: then
            # these bytes would land in a page cache that was just invalidated.
            latest = self.replica.get(node.id)
            if latest is None or latest.version == node.version:
                return data

    @_answer
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        handle = self._files[fh]
        if handle.fd is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        self._check_quota(handle, off + len(buf))
        self.work.check_room(len(buf))
        written = self.work.write(handle.node_id, off, buf)
        handle.dirty = True
        return written

    def _check_quota(self, handle: OpenFile, end: int) -> None:
        """EDQUOT when growing the file to ``end`` would exceed the quota as last known
        (usage changed since then is found by the upload: see uploader)."""
        quota, used = self.replica.account()
        if quota is None or handle.fd is None:
            return
        node = self.replica.get(handle.node_id)
        grows = end - max(self.work.size(handle.node_id), node.size if node is not None else 0)
        if grows > 0 and used + (end - (node.size if node is not None else 0)) > quota:
            raise pyfuse3.FUSEError(errno.EDQUOT)

    @_answer
    async def flush(self, fh: int) -> None:
        handle = self._files[fh]
        if handle.dirty:
            self._save(handle.node_id)
            handle.dirty = False

    @_answer
    async def fsync(self, fh: int, datasync: bool) -> None:
        handle = self._files[fh]
        if handle.dirty or self.queue.get(handle.node_id) is not None:
            self._save(handle.node_id, durable=True)
            handle.dirty = False

    def _save(self, node_id: NodeId, durable: bool = False) -> None:
        """Record the working copy, then queue its upload (close and fsync return after;
        ``durable``, for fsync: on disk, so that a power cut cannot lose it either)."""
        if node_id in self._unlinked or not self.work.has(node_id):
            return
        self.work.save(node_id, durable)
        mtime_ns = self.work.stat(node_id).st_mtime_ns
        base = self.work.base(node_id)
        try:
            node = self.replica.get(node_id)
            place = None if node is None else (node.parent_id, node.name)
            ready_at = time.time() + self.upload_delay
            self.queue.mark(node_id, base, mtime_ns, ready_at, place=place, durable=durable)
            if durable:
                self.namespace.log.sync()  # the file and its folders made here, if waiting
        except sqlite3.OperationalError as exc:  # "database or disk is full"
            raise CacheFull(f"cannot queue the upload: {exc}") from None
        self.uploader.kick()

    async def release(self, fh: int) -> None:
        handle = self._files.pop(fh, None)
        if handle is None or handle.fd is None:
            return
        try:
            if handle.dirty:
                self._save(handle.node_id)
        except MountError as exc:
            log.error("saving node %s on release: %s", handle.node_id, exc)
        self.work.release(handle.node_id)
        if handle.node_id in self._unlinked and not self.work.in_use(handle.node_id):
            self._unlinked.discard(handle.node_id)
            self.work.drop(handle.node_id)
        self.uploader.kick()

    def forget_pages(self, node_id: NodeId) -> None:
        """The kernel's cached pages of the file are not its content any more."""
        if self.kernel:
            notices: list[Notice] = [("inode", self.inode_of(node_id), False)]
            threading.Thread(target=_send, args=(notices,), daemon=True).start()

    def busy(self, node_id: NodeId) -> bool:
        """Open for writing: not uploaded until the last writer closes."""
        return self.work.in_use(node_id)

    # -- xattrs: the control interface (control.py) --------------------------------------

    @_answer
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        return self.control.get(self._node(inode), name)

    @_answer
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> Sequence[bytes]:
        self._node(inode)
        return self.control.names()

    @_answer
    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        self.control.set(self._node(inode), name, value)

    @_answer
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self.control.remove(self._node(inode), name)

    # -- the tree: done on the server at once (namespace.py) ------------------------

    def _child_name(self, name: bytes) -> str:
        """The name of something that exists: the server's names are all UTF-8."""
        if len(name) > NAME_MAX:
            raise pyfuse3.FUSEError(errno.ENAMETOOLONG)
        try:
            return name.decode("utf-8")
        except UnicodeDecodeError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    def _new_name(self, name: bytes, parent: Node | None = None) -> str:
        """A name for something new in ``parent``, as the server will keep it (UTF-8
        text in NFC; not a name the server keeps for itself at the root): checked
        here, since the server hears of it only later."""
        if len(name) > NAME_MAX:
            raise pyfuse3.FUSEError(errno.ENAMETOOLONG)
        try:
            text = normalize(name.decode("utf-8"))
        except UnicodeDecodeError:
            raise pyfuse3.FUSEError(errno.EINVAL) from None
        if len(text.encode("utf-8")) > NAME_MAX:
            raise pyfuse3.FUSEError(errno.ENAMETOOLONG)
        at_top = parent is not None and parent.parent_id is None
        if at_top and text in self.replica.reserved_names:
            raise pyfuse3.FUSEError(errno.EINVAL)
        return text

    def _folder(self, inode: int) -> Node:
        folder = self._node(inode)
        if not folder.is_folder:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return folder

    def _writable(self, *nodes: Node) -> None:
        """A node under a WebDAV lock is read-only here (the server would say 423)."""
        if any(node.locked for node in nodes):
            raise pyfuse3.FUSEError(errno.EACCES)

    def later(self, effects: list[Effect], *extra: Notice) -> None:
        """Tell the kernel what changed, without waiting: inside a request that changed
        the tree the kernel holds the folders' locks that invalidating needs, so the
        notices go out from a thread once this request has been answered."""
        notices = [*self.notices(effects), *extra]
        if notices and self.kernel:
            threading.Thread(target=_send, args=(notices,), daemon=True).start()

    @_answer
    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:  # fmt: skip
        parent = self._folder(parent_inode)
        child = self._new_name(name, parent)
        self._writable(parent)
        if self.replica.child(parent.id, child) is not None:
            raise pyfuse3.FUSEError(errno.EEXIST)
        made, effects = await self.namespace.mkdir(parent, child)
        self.later([e for e in effects if e.old is not None])  # the kernel adds the entry itself
        return self._entry(made)

    def _check_not_into_itself(self, node: Node, parent: Node) -> None:
        """A folder cannot move below itself (EINVAL, as on any disk)."""
        ancestor: Node | None = parent
        while node.is_folder and ancestor is not None:
            if ancestor.id == node.id:
                raise pyfuse3.FUSEError(errno.EINVAL)
            ancestor = None if ancestor.parent_id is None else self.replica.get(ancestor.parent_id)

    async def _remove(self, parent_inode: int, name: bytes, *, folder: bool) -> None:
        parent = self._folder(parent_inode)
        node = self.replica.child(parent.id, self._child_name(name))
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        if node.is_folder != folder:
            raise pyfuse3.FUSEError(errno.ENOTDIR if folder else errno.EISDIR)
        if folder and self.replica.children(node.id, limit=1):
            raise pyfuse3.FUSEError(errno.ENOTEMPTY)
        self._writable(parent, node)
        # An open handle keeps reading: the kernel still knows the inode, so it stays a ghost.
        self.later(self.namespace.remove(node))
        if not folder:
            self._forget_local(node.id)

    @contextlib.contextmanager
    def _leaving(self, *nodes: Node | None) -> Iterator[None]:
        """While the server deletes or replaces these nodes, uploads leave them alone."""
        ids = {node.id for node in nodes if node is not None}
        self.uploader.leaving |= ids
        try:
            yield
        finally:
            self.uploader.leaving -= ids

    def _forget_local(self, node_id: NodeId) -> None:
        """The file is gone from the server: its queued upload goes, and its working copy
        once no handle writes it (an open handle keeps reading and writing it till then)."""
        self.queue.drop(node_id)
        if self.work.in_use(node_id):
            self._unlinked.add(node_id)
        else:
            self.work.drop(node_id)

    @_answer
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._remove(parent_inode, name, folder=False)

    @_answer
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._remove(parent_inode, name, folder=True)

    @_answer
    async def rename(  # noqa: PLR0917 (pyfuse3's signature)
        self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
        name_new: bytes, flags: int, ctx: pyfuse3.RequestContext) -> None:  # fmt: skip
        if flags & ~RENAME_NOREPLACE:  # RENAME_EXCHANGE, RENAME_WHITEOUT: no such thing here
            raise pyfuse3.FUSEError(errno.EINVAL)
        old_parent, new_parent = self._folder(parent_inode_old), self._folder(parent_inode_new)
        node = self.replica.child(old_parent.id, self._child_name(name_old))
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        new_name = self._new_name(name_new, new_parent)
        there = self.replica.child(new_parent.id, new_name)
        if there is not None and there.id == node.id:
            if node.name == new_name:
                return  # renaming onto itself
            there = None  # a change of case or normalisation only
        if there is not None:
            if flags & RENAME_NOREPLACE:
                raise pyfuse3.FUSEError(errno.EEXIST)
            if node.is_folder and not there.is_folder:
                raise pyfuse3.FUSEError(errno.ENOTDIR)
            if there.is_folder and not node.is_folder:
                raise pyfuse3.FUSEError(errno.EISDIR)
            if there.is_folder and self.replica.children(there.id, limit=1):
                raise pyfuse3.FUSEError(errno.ENOTEMPTY)
            self._writable(there)
        self._writable(old_parent, new_parent, node)
        self._check_not_into_itself(node, new_parent)
        if there is None or there.is_folder:
            self.later(self.namespace.move(node, new_parent, new_name, there))
            if not node.is_folder:
                self.queue.moved(node.id, new_parent.id, new_name)
            return
        await self._rename_over_file(node, there, new_parent, new_name, name_new)

    async def _rename_over_file(
        self, node: Node, there: Node, new_parent: Node, new_name: str, name_new: bytes
    ) -> None:
        if not self.work.has(node.id) and not self._either_in_use(node, there):
            # An online-only source: its working copy is its manifest (no bytes
            # fetched), so the replacement is made here too, offline as well.
            await self.work.acquire(node, empty=False)
            self.work.release(node.id)
        if self.work.has(node.id):
            # The source goes away: its bytes not written must be found without it.
            await self.work.resolve_origin(node.id)
        # A file over a file: the name keeps the target's inode (new content, same
        # history), while the kernel will have moved the source's inode there.
        extra: Notice = ("entry", self.inode_of(new_parent.id), name_new)
        self._stand_ins[self.inode_of(node.id)] = there.id
        if self._replaceable_here(node, there):
            self.later(self._replace_locally(node, there), extra,
                       ("inode", self.inode_of(there.id), False))  # fmt: skip
            return
        # The server moves its own copies: local content goes up first, the
        # target's too, so its history holds every version it had.
        await self.namespace.sync.flush()
        await self._upload_now(node.id)
        await self._upload_now(there.id)
        with self._leaving(node, there):
            effects = await self.namespace.move_over_on_server(node, new_parent, new_name, there)
        self._forget_local(node.id)  # the source node is gone; its content is the target's
        self._forget_local(there.id)
        self.later(effects, extra)

    def _replaceable_here(self, node: Node, target: Node) -> bool:
        """A file renamed over a file can be done locally when the source has a working
        copy (an editor's save: written to a temporary file, renamed over the original;
        or an online-only file's manifest) and no handle has either open for writing."""
        return self.work.has(node.id) and not self._either_in_use(node, target)

    def _either_in_use(self, node: Node, target: Node) -> bool:
        return self.work.in_use(node.id) or self.work.in_use(target.id) or node.id in self._unlinked

    def _replace_locally(self, node: Node, target: Node) -> list[Effect]:
        """The target takes the source's working copy as its new content (uploaded as
        its next version, from the version it is at), and the source goes."""
        row = self.queue.get(target.id)
        if row is not None:
            base = row.base_version_id
        else:  # as the target is now: its create may have been answered since the lookup
            current = self.replica.get(target.id) or target
            base = current.version.id if current.version is not None else VersionId(0)
        self.queue.drop(node.id)
        self.work.drop(target.id)
        self.work.adopt(node.id, target.id, base)
        effects = self.namespace.remove(node)
        self._save(target.id)
        return effects

    async def _upload_now(self, node_id: NodeId) -> None:
        """Upload the file's queued content now; fail if it does not go (offline:
        EHOSTDOWN; a refusal: EIO, the reason in the log and in ``status``)."""
        row = self.queue.get(node_id)
        if row is None:
            return
        if row.error is None:
            await self.uploader.upload(row)
        left = self.queue.get(node_id)
        if left is not None and left.error is not None:
            raise UploadFailed(f"node {node_id} cannot be uploaded: {left.error}")
        if left is not None and left.generation == row.generation:
            raise ServerUnreachable(f"node {node_id} is not uploaded yet")

    @_answer
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        node = self._node(inode)
        if fields.update_uid and attr.st_uid != self.uid:
            raise pyfuse3.FUSEError(errno.EPERM)
        if fields.update_gid and attr.st_gid != self.gid:
            raise pyfuse3.FUSEError(errno.EPERM)
        if node.is_folder and fields.update_size:
            raise pyfuse3.FUSEError(errno.EISDIR)
        # Mode bits: the server keeps none, so a chmod is accepted and changes nothing
        # (a failing chmod would break `cp -p` and editors' saves). atime is not kept.
        local = self._local_stat(node.id)
        size = local.st_size if local is not None else node.size
        if fields.update_size and attr.st_size != size:
            self._writable(node)
            await self.work.acquire(node, empty=attr.st_size == 0)
            try:
                self.work.truncate(node.id, attr.st_size)
                self._save(node.id)
            finally:
                self.work.release(node.id)
                self.uploader.kick()
        if fields.update_mtime:
            self._writable(node)
            if self.work.has(node.id):  # the upload carries the working copy's mtime
                with disk_errors():
                    os.utime(self.work.path(node.id), ns=(attr.st_mtime_ns, attr.st_mtime_ns))
                self._save(node.id)
            elif attr.st_mtime_ns != node.mtime_ns:
                node, effects = self.namespace.set_mtime(node, attr.st_mtime_ns)
                self.later(effects)
        return self._attrs(node)

    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:  # fmt: skip
        raise pyfuse3.FUSEError(errno.EROFS)

    @_answer
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        parent = self._folder(parent_inode)
        child = self._new_name(name, parent)
        self._writable(parent)
        if self.replica.child(parent.id, child) is not None:
            raise pyfuse3.FUSEError(errno.EEXIST)
        # Made here with an id the server reserved for us (the inode); the server
        # makes it (empty) from the tree log, and its content follows by upload.
        made, effects = await self.namespace.create(parent, child)
        self.later([e for e in effects if e.old is not None])
        handle = await self._open_for_writing(made, truncate=True)
        fh = next(self._fhs)
        self._files[fh] = handle
        return pyfuse3.FileInfo(fh=fh, keep_cache=False), self._entry(made)

    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:  # fmt: skip
        raise pyfuse3.FUSEError(errno.EROFS)

    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:  # fmt: skip
        raise pyfuse3.FUSEError(errno.EROFS)

    # -- the change feed's side ---------------------------------------------------------

    async def changed(self, effects: list[Effect] | None) -> None:
        """Keep ghosts and drop what the kernel caches about changed nodes (None: everything)."""
        notices = self.notices(effects)
        if notices and self.kernel:
            # Invalidating can block until a related request is answered, and
            # requests are answered by this trio loop: so, from a worker thread.
            # Abandoned on cancel, so a stopping mount never waits on the kernel.
            await trio.to_thread.run_sync(_send, notices, abandon_on_cancel=True)

    def notices(self, effects: list[Effect] | None) -> list[Notice]:
        if effects is None:
            return [("inode", inode, False) for inode in list(self.lookups)]
        notices: list[Notice] = []
        for effect in effects:
            notices.extend(self._notices_for(effect.old, effect.new))
        return list(dict.fromkeys(notices))

    def _known(self, node_id: int | None) -> bool:
        if node_id is None:
            return False
        inode = self.inode_of(node_id)
        return inode == pyfuse3.ROOT_INODE or inode in self.lookups

    def _notices_for(self, old: Node | None, new: Node | None) -> list[Notice]:
        out: list[Notice] = []
        moved = old is None or new is None or (old.parent_id, old.name) != (new.parent_id, new.name)
        for side in (old, new):
            if side is not None and moved and self._known(side.parent_id):
                assert side.parent_id is not None
                out.append(("entry", self.inode_of(side.parent_id), _name(side.name)))
                out.append(("inode", self.inode_of(side.parent_id), True))
        node = new or old
        assert node is not None
        inode = self.inode_of(node.id)
        if new is None:
            if inode in self.lookups and old is not None:
                self._ghosts[inode] = old
            return out
        self._ghosts.pop(inode, None)
        if old is not None and old != new and inode in self.lookups:
            same_content = old.version == new.version and old.size == new.size
            out.append(("inode", inode, same_content))
        return out


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
