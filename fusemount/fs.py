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

import errno
import os
from collections.abc import Sequence

import pyfuse3

from fusemount import posix
from fusemount.apirecords import Node
from fusemount.connectivity import Connectivity
from fusemount.control import Control
from fusemount.errnos import answer
from fusemount.handles import Handles
from fusemount.inodes import Inodes, Notice, fs_name
from fusemount.kernel import Kernel
from fusemount.namespace import Namespace
from fusemount.reader import FileReader
from fusemount.replica import Replica
from fusemount.writeback import WriteBack


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
        self.handles = Handles(replica, reader, writeback, inodes, connectivity)

    # -- inodes (inodes.py) ------------------------------------------------------------

    def _node(self, inode: int) -> Node:
        node = self.inodes.node(inode)
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return node

    def _attrs(self, node: Node) -> pyfuse3.EntryAttributes:
        inode = self.inodes.inode_of(node.id)
        local = None if node.is_folder else self.writeback.local_stat(node.id)
        return posix.attributes(node, inode, local, (self.uid, self.gid))

    def _entry(self, node: Node) -> pyfuse3.EntryAttributes:
        attrs = self._attrs(node)
        self.inodes.counted(attrs.st_ino)
        return attrs

    # -- metadata -------------------------------------------------------------------

    @answer
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
        child = self.replica.child(parent.id, posix.child_name(name))
        if child is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._entry(child)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        self.inodes.forget(inode_list)

    @answer
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attrs(self._node(inode))

    @answer
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        if not self._node(inode).is_folder:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return inode

    @answer
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

    @answer
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        quota, used = self.replica.account()
        return posix.statvfs(quota, used, self.replica.count())

    # -- content --------------------------------------------------------------------

    @answer
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        node = self._node(inode)
        if node.is_folder:
            raise pyfuse3.FUSEError(errno.EISDIR)
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            posix.writable(node)
            fh = await self.handles.open_for_writing(node, truncate=bool(flags & os.O_TRUNC))
            return pyfuse3.FileInfo(fh=fh, keep_cache=False)
        return await self.handles.open_for_reading(node)

    @answer
    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await self.handles.read(fh, off, size)

    @answer
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return self.handles.write(fh, off, buf)

    @answer
    async def flush(self, fh: int) -> None:
        self.handles.flush(fh)

    @answer
    async def fsync(self, fh: int, datasync: bool) -> None:
        self.handles.fsync(fh)

    async def release(self, fh: int) -> None:
        self.handles.release(fh)

    # -- xattrs: the control interface (control.py) --------------------------------------

    @answer
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        return self.control.get(self._node(inode), name)

    @answer
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> Sequence[bytes]:
        self._node(inode)
        return self.control.names()

    @answer
    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        self.control.set(self._node(inode), name, value)

    @answer
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self.control.remove(self._node(inode), name)

    # -- the tree: done on the server at once (namespace.py) ------------------------

    def _new_name(self, name: bytes, parent: Node) -> str:
        at_top = parent.parent_id is None
        return posix.new_name(name, self.replica.reserved_names if at_top else frozenset())

    def _folder(self, inode: int) -> Node:
        folder = self._node(inode)
        if not folder.is_folder:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return folder

    @answer
    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:  # fmt: skip
        parent = self._folder(parent_inode)
        child = self._new_name(name, parent)
        posix.writable(parent)
        if self.replica.child(parent.id, child) is not None:
            raise pyfuse3.FUSEError(errno.EEXIST)
        made, effects = await self.namespace.mkdir(parent, child)
        # The kernel adds the new entry itself.
        self.kernel.tell([e for e in effects if e.old is not None])
        return self._entry(made)

    async def _remove(self, parent_inode: int, name: bytes, *, folder: bool) -> None:
        parent = self._folder(parent_inode)
        node = self.replica.child(parent.id, posix.child_name(name))
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        if node.is_folder != folder:
            raise pyfuse3.FUSEError(errno.ENOTDIR if folder else errno.EISDIR)
        if folder and self.replica.children(node.id, limit=1):
            raise pyfuse3.FUSEError(errno.ENOTEMPTY)
        posix.writable(parent, node)
        # An open handle keeps reading: the kernel still knows the inode, so it stays a ghost.
        self.kernel.tell(self.namespace.remove(node))
        if not folder:
            self.writeback.forget(node.id)

    @answer
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._remove(parent_inode, name, folder=False)

    @answer
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._remove(parent_inode, name, folder=True)

    @answer
    async def rename(  # noqa: PLR0917 (pyfuse3's signature)
        self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
        name_new: bytes, flags: int, ctx: pyfuse3.RequestContext) -> None:  # fmt: skip
        if flags & ~posix.RENAME_NOREPLACE:  # RENAME_EXCHANGE, RENAME_WHITEOUT: no such thing here
            raise pyfuse3.FUSEError(errno.EINVAL)
        old_parent, new_parent = self._folder(parent_inode_old), self._folder(parent_inode_new)
        node = self.replica.child(old_parent.id, posix.child_name(name_old))
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        new_name = self._new_name(name_new, new_parent)
        there = self.replica.child(new_parent.id, new_name)
        if there is not None and there.id == node.id:
            if node.name == new_name:
                return  # renaming onto itself
            there = None  # a change of case or normalisation only
        if there is not None:
            full = there.is_folder and bool(self.replica.children(there.id, limit=1))
            posix.check_replace(node, there, flags, there_empty=not full)
        posix.writable(old_parent, new_parent, node)
        posix.check_not_into_itself(node, new_parent, self.replica.get)
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

    @answer
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
            posix.writable(node)
            await self.writeback.truncate(node, attr.st_size)
        if fields.update_mtime:
            posix.writable(node)
            # With a working copy, the upload carries its mtime.
            if not self.writeback.set_mtime(node.id, attr.st_mtime_ns) and (
                attr.st_mtime_ns != node.mtime_ns
            ):
                node, effects = self.namespace.set_mtime(node, attr.st_mtime_ns)
                self.kernel.tell(effects)
        return self._attrs(node)

    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:  # fmt: skip
        raise pyfuse3.FUSEError(errno.EROFS)

    @answer
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        parent = self._folder(parent_inode)
        child = self._new_name(name, parent)
        posix.writable(parent)
        if self.replica.child(parent.id, child) is not None:
            raise pyfuse3.FUSEError(errno.EEXIST)
        # Made here with an id the server reserved for us (the inode); the server
        # makes it (empty) from the tree log, and its content follows by upload.
        made, effects = await self.namespace.create(parent, child)
        self.kernel.tell([e for e in effects if e.old is not None])
        fh = await self.handles.open_for_writing(made, truncate=True)
        return pyfuse3.FileInfo(fh=fh, keep_cache=False), self._entry(made)

    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:  # fmt: skip
        raise pyfuse3.FUSEError(errno.EROFS)

    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:  # fmt: skip
        raise pyfuse3.FUSEError(errno.EROFS)
