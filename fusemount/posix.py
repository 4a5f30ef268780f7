"""Plain file-system answers that need nothing but the node at hand: the
attributes the kernel sees, ``statfs`` figures, which names are acceptable,
and what a rename may replace. Each raises ``FUSEError`` with the errno any
disk would answer (the mount's own errors go through ``errnos``)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

import pyfuse3

from fusemount.apirecords import Node, NodeId
from fusemount.replica import normalize

TIMEOUT = 60.0  # the change feed invalidates what changes; this is only a safety net
BLOCK = 4096
NAME_MAX = 255  # bytes, as statfs says
RENAME_NOREPLACE = 1


def attributes(node: Node, inode: int, local: os.stat_result | None,
               owner: tuple[int, int]) -> pyfuse3.EntryAttributes:  # fmt: skip
    """The node's attributes; a file's size and mtime come from ``local``, its working
    copy, while it has one. A node under a WebDAV lock shows read-only modes."""
    attrs = pyfuse3.EntryAttributes()
    attrs.st_ino = inode
    attrs.generation = 0
    attrs.entry_timeout = TIMEOUT
    attrs.attr_timeout = TIMEOUT
    if node.is_folder:
        local = None
        attrs.st_mode = stat.S_IFDIR | (0o555 if node.locked else 0o755)
        attrs.st_nlink = 2
        attrs.st_size = 0
    else:
        attrs.st_mode = stat.S_IFREG | (0o444 if node.locked else 0o644)
        attrs.st_nlink = 1
        attrs.st_size = node.size if local is None else local.st_size
    attrs.st_uid, attrs.st_gid = owner
    attrs.st_blksize = 128 * 1024
    attrs.st_blocks = -(-attrs.st_size // 512)
    mtime_ns = node.mtime_ns if local is None else local.st_mtime_ns
    attrs.st_atime_ns = attrs.st_mtime_ns = attrs.st_ctime_ns = mtime_ns
    return attrs


def statvfs(quota: int | None, used: int, files: int) -> pyfuse3.StatvfsData:
    """``statfs`` from the account as last known (no quota: "1 PiB free")."""
    total = quota if quota is not None else max(used, 0) + (1 << 50)
    data = pyfuse3.StatvfsData()
    data.f_bsize = data.f_frsize = BLOCK
    data.f_blocks = total // BLOCK
    data.f_bfree = data.f_bavail = max(total - used, 0) // BLOCK
    data.f_files = files
    data.f_ffree = data.f_favail = 1 << 32
    data.f_namemax = NAME_MAX
    return data


def child_name(name: bytes) -> str:
    """The name of something that exists: the server's names are all UTF-8."""
    if len(name) > NAME_MAX:
        raise pyfuse3.FUSEError(errno.ENAMETOOLONG)
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError:
        raise pyfuse3.FUSEError(errno.ENOENT) from None


def new_name(name: bytes, reserved: frozenset[str] = frozenset()) -> str:
    """A name for something new, as the server will keep it (UTF-8 text in NFC; not
    one of ``reserved``, the names the server keeps for itself at the root): checked
    here, since the server hears of it only later."""
    if len(name) > NAME_MAX:
        raise pyfuse3.FUSEError(errno.ENAMETOOLONG)
    try:
        text = normalize(name.decode("utf-8"))
    except UnicodeDecodeError:
        raise pyfuse3.FUSEError(errno.EINVAL) from None
    if len(text.encode("utf-8")) > NAME_MAX:
        raise pyfuse3.FUSEError(errno.ENAMETOOLONG)
    if text in reserved:
        raise pyfuse3.FUSEError(errno.EINVAL)
    return text


def writable(*nodes: Node) -> None:
    """A node under a WebDAV lock is read-only here (the server would say 423)."""
    if any(node.locked for node in nodes):
        raise pyfuse3.FUSEError(errno.EACCES)


def check_replace(node: Node, there: Node, flags: int, there_empty: bool) -> None:
    """Whether a rename of ``node`` may replace ``there``, as on any disk."""
    if flags & RENAME_NOREPLACE:
        raise pyfuse3.FUSEError(errno.EEXIST)
    if node.is_folder and not there.is_folder:
        raise pyfuse3.FUSEError(errno.ENOTDIR)
    if there.is_folder and not node.is_folder:
        raise pyfuse3.FUSEError(errno.EISDIR)
    if there.is_folder and not there_empty:
        raise pyfuse3.FUSEError(errno.ENOTEMPTY)
    writable(there)


def check_not_into_itself(node: Node, parent: Node, get: Callable[[NodeId], Node | None]) -> None:
    """A folder cannot move below itself (EINVAL, as on any disk); ``get`` finds a parent."""
    ancestor: Node | None = parent
    while node.is_folder and ancestor is not None:
        if ancestor.id == node.id:
            raise pyfuse3.FUSEError(errno.EINVAL)
        ancestor = None if ancestor.parent_id is None else get(ancestor.parent_id)
