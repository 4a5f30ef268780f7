"""The mount process's composition root: check the mountpoint and the cache
dir, open the replica and the cache, check the server and load the tree,
then mount and run the FUSE loop, the change feed, pin hydration and
background fetches in one trio nursery until unmounted or signalled.
Everything is closed in reverse order on the way out, mounted or not.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pyfuse3
import trio

from fusemount.apirecords import Me, NodeId, VersionId
from fusemount.cache import ChunkCache
from fusemount.client import HttpApi, SyncApi
from fusemount.connectivity import Connectivity
from fusemount.control import Control, Identity
from fusemount.errors import ServerUnreachable, SetupError
from fusemount.fs import DriveFs
from fusemount.inodes import Inodes
from fusemount.kernel import Kernel
from fusemount.namespace import Namespace
from fusemount.pins import Pins
from fusemount.reader import ChunkSource, FileReader
from fusemount.replica import Replica
from fusemount.sync import FeedFollower
from fusemount.treelog import TreeLog
from fusemount.treesync import TreeSync
from fusemount.uploader import Uploader
from fusemount.uploadqueue import UploadQueue
from fusemount.workcopy import WorkCopies
from fusemount.writeback import WriteBack
from runtime.heap import settle_heap

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_DELAY = 2.0  # seconds between a close and its upload (saves come in bursts)

READ_AHEAD_KB = 4096  # kernel read-ahead for the mount: 1 MiB FUSE reads instead of 128 KiB


@dataclass(frozen=True)
class MountOptions:
    url: str
    user: str
    secret: str
    mountpoint: Path
    cache_dir: Path
    cache_size: int
    allow_other: bool = False
    upload_delay: float = DEFAULT_UPLOAD_DELAY


def default_cache_dir(url: str, user: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    netloc = urlsplit(url).netloc.replace(":", "_") or "server"
    return Path(base) / "drivegate" / f"{user}@{netloc}"


def check_mountpoint(path: Path) -> None:
    """An existing, empty folder that is not mounted already (else SetupError, nothing done)."""
    try:
        if os.path.ismount(path):
            raise SetupError(f"{path} is already a mount point")
        if not path.exists():
            raise SetupError(f"mountpoint {path} does not exist")
        if not path.is_dir():
            raise SetupError(f"mountpoint {path} is not a folder")
        with os.scandir(path) as entries:
            if next(entries, None) is not None:
                raise SetupError(f"mountpoint {path} is not empty")
    except OSError as exc:
        if exc.errno == errno.ENOTCONN:
            raise SetupError(
                f"{path} is a dead mount: run `drivegate umount {path}` first"
            ) from None
        raise SetupError(f"mountpoint {path}: {exc.strerror}") from None


@contextmanager
def locked_cache_dir(path: Path, mountpoint: Path) -> Iterator[None]:
    """One mount per cache dir at a time (both would write the replica and the cache).

    The lock file names the holder (pid and mountpoint), so that a second mount of
    the same drive is refused with a message saying who holds it and what to do."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = os.open(path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise SetupError(f"cache dir {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SetupError(
                f"cache dir {path} is in use by another mount{_holder(lock)}: to mount this"
                " drive a second time, give this mount its own cache dir with --cache-dir DIR"
            ) from None
        with contextlib.suppress(OSError):  # only for the message above: best effort
            os.ftruncate(lock, 0)
            os.pwrite(lock, f"{os.getpid()} {mountpoint}\n".encode("utf-8", "surrogateescape"), 0)
        yield
    finally:
        os.close(lock)


def _holder(lock: int) -> str:
    """`` (pid N at MOUNTPOINT)`` as the lock's holder wrote it, or nothing."""
    try:
        pid, _, where = os.pread(lock, 4096, 0).decode("utf-8", "replace").strip().partition(" ")
    except OSError:
        return ""
    return f" (pid {pid} at {where})" if pid.isdigit() and where else ""


def run(options: MountOptions, ready: Callable[[], None]) -> None:
    """Mount and serve until unmounted or signalled; ``ready`` is called once mounted."""
    trio.run(_run, options, ready)


async def _run(options: MountOptions, ready: Callable[[], None]) -> None:
    async with HttpApi(options.url, options.user, options.secret) as api:
        # The server is asked first: wrong credentials or a wrong URL leave no trace.
        me = await _probe(api, options)
        with ExitStack() as stack:
            stack.enter_context(locked_cache_dir(options.cache_dir, options.mountpoint))
            try:
                replica = Replica(options.cache_dir / "replica.sqlite")
                stack.callback(replica.close)
                replica.bind(api.base_url, options.user)
                cache = ChunkCache(options.cache_dir, options.cache_size)
                stack.callback(cache.close)
                queue = UploadQueue(options.cache_dir / "uploads.sqlite")
                stack.callback(queue.close)
                tree_log = TreeLog(options.cache_dir / "uploads.sqlite")
                stack.callback(tree_log.close)
            except OSError as exc:
                raise SetupError(f"cache dir {options.cache_dir}: {exc.strerror or exc}") from None
            except sqlite3.Error as exc:
                raise SetupError(f"cache dir {options.cache_dir}: {exc}") from None
            await _serve(options, api, me, replica, cache, queue, tree_log, ready)


async def _probe(api: HttpApi, options: MountOptions) -> Me | None:
    """Who we are on the server; None when it is unreachable but a replica can stand in."""
    try:
        return await api.me()
    except ServerUnreachable as exc:
        if not (options.cache_dir / "replica.sqlite").exists():
            raise SetupError(f"{exc}, and there is no local copy of the tree to mount") from None
        log.warning("%s: mounting offline from the local replica", exc)
        return None


@dataclass(frozen=True)
class Parts:
    """The mount's working parts, wired together (the tests drive them in-process)."""

    fs: DriveFs
    feed: FeedFollower
    source: ChunkSource
    pins: Pins
    uploader: Uploader
    tree: TreeSync


def assemble(  # noqa: PLR0917 (the pieces the caller opened)
    api: SyncApi,
    replica: Replica,
    cache: ChunkCache,
    identity: Identity,
    queue: UploadQueue,
    tree_log: TreeLog,
    upload_delay: float = DEFAULT_UPLOAD_DELAY,
) -> Parts:
    """Build the parts in dependency order, each given what it uses when it is made;
    ``queue`` and ``tree_log`` live in the cache dir, the working copies next to it.

    Everything flows one way: what changes the replica in the background (the
    uploader, the tree sync, the change feed) tells ``kernel`` what the kernel must
    drop, and ``kernel`` asks ``inodes`` what the kernel knows; neither knows the
    file system, which sits on top. The tree sync takes new files' content from the
    uploader (``contents``/``created_with``) and reports made files (``made``);
    ``control`` reaches the uploader and the tree sync only through ``upload_now``.
    The one event channel is ``connectivity.on_online``: listeners registered here."""
    connectivity = Connectivity()
    source = ChunkSource(api, cache, connectivity)
    reader = FileReader(api, replica, source)
    work = WorkCopies(cache.directory, reader)
    work.keep_only({row.node_id: row.base_version_id for row in queue.all()})
    queue.resume(time.time() + upload_delay)
    pins = Pins(replica, cache, reader, connectivity, local=work.copies.get)
    inodes = Inodes(replica)
    kernel = Kernel(inodes)
    uploader = Uploader(api, replica, work, queue, connectivity, busy=work.in_use,
                        waiting=tree_log.unmade, changed=kernel.tell,
                        dropped=kernel.forget_pages)  # fmt: skip

    def made(node_id: NodeId, version: VersionId) -> None:
        work.rebase(node_id, version, only_from=VersionId(0))
        uploader.kick()

    tree = TreeSync(api, replica, tree_log, queue, connectivity=connectivity,
                    host=uploader.host, changed=kernel.tell, made=made,
                    contents=uploader.contents_for_creates,
                    created_with=uploader.created_with)  # fmt: skip

    def upload_now() -> None:
        queue.resume(time.time())
        uploader.kick()
        tree.kick()

    control = Control(replica, reader, pins, cache=cache, connectivity=connectivity,
                      identity=identity, queue=queue, tree=tree_log,
                      tree_problems=lambda: tree.problems, upload_now=upload_now)  # fmt: skip
    namespace = Namespace(api, replica, tree_log, tree)
    writeback = WriteBack(replica, namespace, work, queue, uploader, upload_delay)
    fs = DriveFs(replica, reader, control, connectivity, namespace=namespace,
                 writeback=writeback, inodes=inodes, kernel=kernel)  # fmt: skip
    feed = FeedFollower(api, replica, connectivity, pins, kernel.changed,
                      pending=tree_log.pending_nodes)  # fmt: skip
    connectivity.on_online(tree.kick)
    return Parts(fs, feed, source, pins, uploader, tree)


async def _serve(  # noqa: PLR0917 (the parts the composition root built)
    options: MountOptions,
    api: HttpApi,
    me: Me | None,
    replica: Replica,
    cache: ChunkCache,
    queue: UploadQueue,
    tree_log: TreeLog,
    ready: Callable[[], None],
) -> None:
    identity = Identity(api.base_url, options.user, str(options.cache_dir))
    parts = assemble(api, replica, cache, identity, queue, tree_log, options.upload_delay)
    fs, feed, source, pins = parts.fs, parts.feed, parts.source, parts.pins
    await feed.start(me)
    try:
        pyfuse3.init(fs, str(options.mountpoint), _fuse_options(options))
    except RuntimeError as exc:  # libfuse says why on stderr (the mount log)
        raise SetupError(f"cannot mount on {options.mountpoint}: {exc}") from None
    fs.kernel.start()
    unmount = True  # unless the kernel side went away by itself (`umount`)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(source.run)
            await nursery.start(pins.run)
            await nursery.start(feed.run)
            await nursery.start(parts.uploader.run)
            await nursery.start(parts.tree.run)
            nursery.start_soon(_in_thread, _raise_read_ahead, options.mountpoint)
            stop = await nursery.start(_watch_signals)
            settle_heap()
            ready()
            log.info("mounted %s at %s", api.base_url, options.mountpoint)
            await pyfuse3.main()
            unmount = stop.is_set()
            nursery.cancel_scope.cancel()
    finally:
        # After `umount` the kernel side is gone already; after a signal we unmount.
        fs.kernel.stop()
        pyfuse3.close(unmount=unmount)
        log.info("unmounted %s", options.mountpoint)


async def _in_thread(job: Callable[[Path], None], path: Path) -> None:
    # Abandoned on cancel: a stat of the mountpoint that the stopped loop will
    # never answer must not hold up the unmount.
    await trio.to_thread.run_sync(job, path, abandon_on_cancel=True)


def _fuse_options(options: MountOptions) -> set[str]:
    # No max_read here: libfuse 3.14 then refuses the session (see NOTES); the
    # request size comes from the kernel read-ahead instead (_raise_read_ahead).
    fuse_options = set(pyfuse3.default_options)  # default_permissions: the kernel checks modes
    fuse_options |= {"fsname=drivegate", "subtype=drivegate", "noatime"}
    if options.allow_other:
        fuse_options.add("allow_other")
    return fuse_options


async def _watch_signals(*, task_status: trio.TaskStatus[trio.Event]) -> None:
    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        task_status.started(stop)
        async for signum in signals:
            log.info("signal %s: unmounting", signal.Signals(signum).name)
            stop.set()
            pyfuse3.terminate()


def _raise_read_ahead(mountpoint: Path) -> None:
    """Let the kernel send 1 MiB reads: set the mount's read-ahead (root only; best effort)."""
    target = os.path.abspath(mountpoint)
    device = None
    try:
        # The kernel sets read-ahead when it processes the FUSE INIT reply; a stat
        # returns only after that (this runs in a thread: the loop answers it).
        os.stat(target)
        with open("/proc/self/mountinfo") as mounts:
            for line in mounts:
                fields = line.split()
                path = fields[4].replace("\\040", " ").replace("\\134", "\\")
                if path == target and " - fuse" in line:
                    device = fields[2]
        if device is not None:
            with open(f"/sys/class/bdi/{device}/read_ahead_kb", "w") as knob:
                knob.write(str(READ_AHEAD_KB))
    except OSError as exc:
        log.debug("kernel read-ahead left as it is: %s", exc)
