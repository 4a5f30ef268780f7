"""The pyfuse3 operations: thin handlers over the replica (metadata), the
reader (content), the write-back policy (``writeback``) and the control
interface (xattrs). ``errno_for`` is the one seam from the mount's errors to
errnos; nothing else here raises ``FUSEError`` except for plain file-system
answers (ENOENT, ENOTDIR, EROFS, …) and POSIX rules the server does not know.

Inodes are node ids, with lookup counts, ghosts and stand-ins (``inodes``);
the kernel is told what changed through ``kernel`` (one worker thread).

Tree changes (mkdir, create, rmdir, unlink, rename, mtime) are made locally
first through ``namespace`` (the replica at once, the server from the tree
log in the background). A file renamed over another takes the target's place
and inode (``writeback``). Content writes go to the file's working copy;
``flush``/``fsync`` make it durable and queue its upload before they return.
Symlinks, hard links and special files answer EROFS. There is no
``fallocate``: pyfuse3 has no such handler, so the kernel answers EOPNOTSUPP
itself and glibc's ``posix_fallocate`` falls back to writes (docs/mount.md,
"Preallocation").
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import logging
import os
import stat
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

import pyfuse3

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
    XattrError,
)
from fusemount.inodes import Inodes, Notice, fs_name
from fusemount.kernel import Kernel
from fusemount.namespace import Namespace
from fusemount.reader import FileReader, ReadAhead
from fusemount.records import Node, NodeId
from fusemount.replica import Effect, Replica, normalize
from fusemount.writeback import WriteBack

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


@dataclass
class OpenFile:
    node_id: NodeId
    ahead: ReadAhead = field(default_factory=ReadAhead)
    fd: int | None = None  # the working copy, for a handle open for writing
    dirty: bool = False  # written since the last flush/fsync


class DriveFs(pyfuse3.Operations):
    """The mount's file system (see the module docstring)."""

    supports_dot_lookup = True
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, replica: Replica, reader: FileReader, control: Control,
                 connectivity: Connectivity, *, namespace: Namespace, writeback: WriteBack,
                 inodes: Inodes, kernel: Kernel) -> None:  # fmt: skip
        super().__init__()
        self.replica = replica
        self.namespace = namespace
        self.writeback = writeback
        self.reader = reader
        self.control = control
        self.connectivity = connectivity
        self.inodes = inodes
        self.kernel = kernel
        self.uid, self.gid = os.getuid(), os.getgid()
        self._files: dict[int, OpenFile] = {}
        self._fhs = itertools.count(1)

    # -- inodes (inodes.py) ------------------------------------------------------------

    def _node(self, inode: int) -> Node:
        node = self.inodes.node(inode)
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return node

    def _attrs(self, node: Node) -> pyfuse3.EntryAttributes:
        attrs = pyfuse3.EntryAttributes()
        attrs.st_ino = self.inodes.inode_of(node.id)
        attrs.generation = 0
        attrs.entry_timeout = TIMEOUT
        attrs.attr_timeout = TIMEOUT
        local = None if node.is_folder else self.writeback.local_stat(node.id)
        if node.is_folder:
            attrs.st_mode = stat.S_IFDIR | (0o555 if node.locked else 0o755)
            attrs.st_nlink = 2
            attrs.st_size = 0
        else:
            attrs.st_mode = stat.S_IFREG | (0o444 if node.locked else 0o644)
            attrs.st_nlink = 1
            attrs.st_size = node.size if local is None else local.st_size
        attrs.st_uid, attrs.st_gid = self.uid, self.gid
        attrs.st_blksize = 128 * 1024
        attrs.st_blocks = -(-attrs.st_size // 512)
        mtime_ns = node.mtime_ns if local is None else local.st_mtime_ns
        attrs.st_atime_ns = attrs.st_mtime_ns = attrs.st_ctime_ns = mtime_ns
        return attrs

    def _entry(self, node: Node) -> pyfuse3.EntryAttributes:
        attrs = self._attrs(node)
        self.inodes.counted(attrs.st_ino)
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
        self.inodes.forget(inode_list)

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
                    token, fs_name(child.name), self._attrs(child), child.id
                ):
                    return
                self.inodes.counted(self.inodes.inode_of(child.id))  # readdirplus: a lookup
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
        if node.size and self.connectivity.online and not self.writeback.has_copy(node.id):
            # Fetched now, an open handle can still read this version if the file
            # is deleted or replaced meanwhile (the server forgets trashed manifests).
            with contextlib.suppress(MountError):
                await self.reader.manifest(node)
        fh = next(self._fhs)
        self._files[fh] = OpenFile(node.id)
        # The page cache may outlive this handle: `changed` drops it when a new version arrives.
        return pyfuse3.FileInfo(fh=fh, keep_cache=not self.writeback.has_copy(node.id))

    async def _open_for_writing(self, node: Node, truncate: bool) -> OpenFile:
        fd, dirty = await self.writeback.open(node, truncate)
        return OpenFile(node.id, fd=fd, dirty=dirty)

    @_answer
    async def read(self, fh: int, off: int, size: int) -> bytes:
        handle = self._files[fh]
        inode = self.inodes.inode_of(handle.node_id)
        while True:
            if self.writeback.has_copy(handle.node_id):
                return await self.writeback.read(handle.node_id, off, size, handle.ahead)
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
        if not self.writeback.within_quota(handle.node_id, off + len(buf)):
            raise pyfuse3.FUSEError(errno.EDQUOT)
        written = self.writeback.write(handle.node_id, off, buf)
        handle.dirty = True
        return written

    @_answer
    async def flush(self, fh: int) -> None:
        handle = self._files[fh]
        if handle.dirty:
            self.writeback.save(handle.node_id)
            handle.dirty = False

    @_answer
    async def fsync(self, fh: int, datasync: bool) -> None:
        handle = self._files[fh]
        if handle.dirty or self.writeback.queued(handle.node_id):
            self.writeback.save(handle.node_id, durable=True)
            handle.dirty = False

    async def release(self, fh: int) -> None:
        handle = self._files.pop(fh, None)
        if handle is not None and handle.fd is not None:
            self.writeback.release(handle.node_id, handle.dirty)

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

    @_answer
    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:  # fmt: skip
        parent = self._folder(parent_inode)
        child = self._new_name(name, parent)
        self._writable(parent)
        if self.replica.child(parent.id, child) is not None:
            raise pyfuse3.FUSEError(errno.EEXIST)
        made, effects = await self.namespace.mkdir(parent, child)
        self.kernel.tell(
            [e for e in effects if e.old is not None]
        )  # the kernel adds the entry itself
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
        self.kernel.tell(self.namespace.remove(node))
        if not folder:
            self.writeback.forget(node.id)

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
            self.kernel.tell(self.namespace.move(node, new_parent, new_name, there))
            if not node.is_folder:
                self.writeback.moved(node.id, new_parent.id, new_name)
            return
        await self._rename_over_file(node, there, new_parent, new_name, name_new)

    async def _rename_over_file(
        self, node: Node, there: Node, new_parent: Node, new_name: str, name_new: bytes
    ) -> None:
        await self.writeback.prepare_rename_over(node, there)
        # A file over a file: the name keeps the target's inode (new content, same
        # history), while the kernel will have moved the source's inode there.
        extra: Notice = ("entry", self.inodes.inode_of(new_parent.id), name_new)
        self.inodes.stand_in(node.id, there.id)
        if self.writeback.replaceable_here(node, there):
            effects = self.writeback.replace_locally(node, there)
            self.kernel.tell(effects, extra, ("inode", self.inodes.inode_of(there.id), False))
            return
        effects = await self.writeback.replace_on_server(node, there, new_parent, new_name)
        self.kernel.tell(effects, extra)

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
        local = self.writeback.local_stat(node.id)
        size = local.st_size if local is not None else node.size
        if fields.update_size and attr.st_size != size:
            self._writable(node)
            await self.writeback.truncate(node, attr.st_size)
        if fields.update_mtime:
            self._writable(node)
            if self.writeback.set_mtime(node.id, attr.st_mtime_ns):
                pass  # the upload carries the working copy's mtime
            elif attr.st_mtime_ns != node.mtime_ns:
                node, effects = self.namespace.set_mtime(node, attr.st_mtime_ns)
                self.kernel.tell(effects)
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
        self.kernel.tell([e for e in effects if e.old is not None])
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
        await self.kernel.changed(effects)
