"""The FUSE face of drivegate: mounts a user's drive as a local folder,
talking to the server over the sync API (HTTP only). It imports nothing of
``core`` or ``davserver``; it stands on ``cdc`` (chunking, the delta walk) and
``runtime`` (heap settings, aligned buffers, the size option) as the core does,
and a test checks that mounting loads no database, store or WebDAV library.

Modules, one job each:

- ``apirecords`` typed records of the sync API, parsed in one place
- ``errors``    the mount's exception tree (drawn in its docstring)
- ``client``    ``SyncApi`` protocol and its httpx implementation; HTTP → errors
- ``replica``   the local metadata replica (SQLite): tree, cursor, manifests, pins
- ``cache``     the content-addressed chunk cache with a hard size limit (LRU)
- ``connectivity`` whether the server answered lately; who to tell when it is back
- ``concurrency`` ``gather`` (parallel jobs, first error as itself) and ``leading``
- ``reader``    offset → chunks, parallel fetches, read-ahead
- ``pins``      pins, file states, background hydration of pinned files
- ``sync``      the change feed: first load, long-poll, reconnect and catch-up
- ``control``   the ``user.drivegate.*`` xattrs: states, pins, mount status
- ``namespace`` tree changes made through the mount (mkdir, create, delete,
                rename, mtime): applied to the replica, logged for the server
- ``treelog``   the durable log of tree changes waiting for the server, and
                the pool of node ids the server reserved for new nodes
- ``treesync``  replays the tree log in order; settles what the server refuses
- ``workcopy``  working copies of files being written (CACHE_DIR/work)
- ``uploadqueue`` the durable upload queue (SQLite): what to upload, from which base
- ``contentsend`` sending a working copy: missing chunks only, patches, splices
- ``uploader``  background uploads: when, retries, conflicted copies
- ``writeback`` the write-back policy: saves, the queue, rename-over, quota (no pyfuse3)
- ``inodes``    node id ↔ inode, lookup counts, ghosts and stand-ins; which notices
- ``kernel``    kernel invalidation, sent by one long-lived worker thread
- ``handles``   open files by handle: reading, writing, flush, fsync, release
- ``posix``     plain file-system answers: attributes, statfs, names, rename rules
- ``errnos``    the mount's errors → errnos (``errno_for``, the ``answer`` decorator)
- ``fs``        pyfuse3 operations (thin handlers over the above)
- ``mount``     the mount process's composition root
- ``cli``       ``drivegate mount|umount|pin|unpin|status``

Layering inside the package is one way: apirecords/errors ← client, connectivity,
concurrency ← replica, cache, uploadqueue, treelog ← reader ← pins ← control, sync, workcopy
← contentsend ← uploader ← treesync ← namespace ← writeback, inodes ← kernel, handles, posix,
errnos ← fs ← mount ← cli. docs/mount.md explains the behaviour (cache,
pins, write-back, errnos, the xattr control interface).
"""

from fusemount.cli import COMMANDS
from fusemount.errors import MountError
from fusemount.fs import DriveFs
from fusemount.mount import MountOptions

__all__ = ["COMMANDS", "DriveFs", "MountError", "MountOptions"]
