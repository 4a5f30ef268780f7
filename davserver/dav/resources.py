"""WebDAV resources over the drive service: a folder and a file of one user.

A resource is built from a ``NodeInfo`` the provider already fetched, so a
listing of N members costs one query, not N. Writes go through
``core.Drive``: PUT streams the request body straight into ``Drive.write``
(``writelines`` reads the body itself, in ``BODY_BLOCK`` pieces), COPY/MOVE/DELETE are
native single transactions.
"""

from __future__ import annotations

import functools
import io
import math
import mimetypes
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from wsgidav import util, xml_tools
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_FORBIDDEN,
    HTTP_NOT_FOUND,
    HTTP_PRECONDITION_FAILED,
    DAVError,
    PRECONDITION_CODE_ProtectedProperty,
)
from wsgidav.dav_provider import DAVCollection, DAVNonCollection

from core import ContentReader, NameTaken, NodeId, NodeInfo, UserInfo, VersionId
from davserver.dav import checksums
from davserver.dav.errors import dav_errors
from davserver.dav.xmlguard import UnsafeXml, checked_fragment

if TYPE_CHECKING:
    from davserver.dav.provider import DriveProvider


RESOURCES = "drivegate.resources"
"""environ key of the request's resources by path (``DriveProvider.get_resource_inst``)."""


@contextmanager
def changing(environ: dict[str, Any]) -> Iterator[None]:
    """Around a change to the tree: the drive's errors become DAV errors, and the
    request forgets the resources it looked up so far (they may be stale now)."""
    try:
        with dav_errors():
            yield
    finally:
        environ.pop(RESOURCES, None)


def _overwrite(environ: dict[str, Any]) -> bool:
    """The request's ``Overwrite`` header (WsgiDAV checked it is T or F; T if absent)."""
    return bool(environ.get("HTTP_OVERWRITE", "T") != "F")


@contextmanager
def _taken_is_412(*, overwrite: bool) -> Iterator[None]:
    """A COPY/MOVE with ``Overwrite: F`` whose destination exists answers 412 (RFC 4918
    §9.8.5), also when it came into being after WsgiDAV looked: the drive checks
    again in the transaction that copies or moves."""
    try:
        yield
    except NameTaken as taken:
        if overwrite:
            raise
        raise DAVError(HTTP_PRECONDITION_FAILED, context_info=str(taken)) from taken


def ref_prefix(environ: dict[str, Any]) -> str:
    """Lock and property keys start with the user id: ``/~7/docs/a.txt``."""
    return f"/~{environ['drivegate.user'].id}"


def _is_dead(name: str) -> bool:
    """Client-defined properties; {DAV:}, Microsoft's Win32* and ``oc:checksums`` are live."""
    return name != checksums.CHECKSUMS and not name.startswith(
        ("{DAV:}", "{urn:schemas-microsoft-com:}")
    )


def _user(environ: dict[str, Any]) -> UserInfo:
    user: UserInfo = environ["drivegate.user"]
    return user


def etag_of(version_id: int | None, manifest_id: int | None) -> str | None:
    """A file version's ETag: strong, and it changes with content only: the version
    plus its manifest (never the whole-file SHA-256, which an API commit may leave
    unknown)."""
    if version_id is None or manifest_id is None:
        return None
    return f"{version_id}-{manifest_id}"


def _storable(value: Any) -> bytes:
    """A dead property's value as stored, refused (400) unless it parses back."""
    try:
        return checked_fragment(value)
    except UnsafeXml as error:
        raise DAVError(HTTP_BAD_REQUEST, context_info=f"property value: {error}") from None


class Readable:
    """What every readable file resource offers: strong ETags and Range reads."""

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return True


def content_type(name: str) -> str:
    base = name.rpartition("/")[2]
    dot = base.rfind(".")
    return _type_of_suffix(base[dot:].lower() if dot > 0 else "")


@functools.lru_cache(maxsize=512)
def _type_of_suffix(suffix: str) -> str:
    guessed, _ = mimetypes.guess_type("x" + suffix)
    return guessed or "application/octet-stream"


OC_LASTMODIFIED = "{DAV:}lastmodified"
"""Not RFC 4918's: ownCloud's writable modification time in seconds."""
MAX_MTIME_NS = 2**63 - 1
"""The largest mtime a node holds (a signed 64-bit column; the sync API's bound too)."""


def parse_mtime(value: str | None) -> int | None:
    """``X-OC-Mtime`` (seconds since the epoch, integer or decimal) as nanoseconds; None
    if absent. Raises ``ValueError`` for anything else: not a number, NaN, infinite,
    negative, or past what a node can hold (``MAX_MTIME_NS``)."""
    if not value:
        return None
    seconds = float(value)  # ValueError for what is not a number
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_MTIME_NS / 1e9:
        raise ValueError(f"X-OC-Mtime must be seconds from 0 to {MAX_MTIME_NS // 10**9}")
    return min(int(seconds * 1_000_000_000), MAX_MTIME_NS)


BODY_BLOCK = 256 * 1024
"""PUT reads its body in blocks of this size. WsgiDAV would hand it blocks of GET's
size (4 MiB, so that a GET sends whole chunks), and those, allocated and freed
between the chunks an upload holds, fragmented the heap: the server's peak memory
grew with file size."""


class _BodyStream(io.RawIOBase):
    """The PUT body (``wsgi.input``) as a raw stream: ``readinto`` copies each block
    once, straight into the chunker's buffer."""

    def __init__(self, body: Any) -> None:
        super().__init__()
        self._body = body
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        filled = 0
        while filled < len(buffer):
            if not self._pending:
                block = self._body.read(BODY_BLOCK)
                if not block:
                    break
                self._pending = memoryview(block)
            n = min(len(buffer) - filled, len(self._pending))
            buffer[filled : filled + n] = self._pending[:n]
            self._pending = self._pending[n:]
            filled += n
        return filled


class _PutSink:
    """What ``begin_write`` returns: ``writelines`` runs the whole upload."""

    def __init__(self, resource: FileResource) -> None:
        self.resource = resource

    def writelines(self, blocks: Iterable[bytes]) -> None:
        environ = self.resource.environ
        length = environ.get("CONTENT_LENGTH")
        expected = int(length) if length and length.isdigit() else None
        self.resource.store(_BodyStream(environ["wsgi.input"]), expected_size=expected)
        for _ in blocks:  # the body is read: this lets WsgiDAV see so (and keep the connection)
            pass

    def close(self) -> None:
        """The upload committed (or failed) inside ``writelines``."""


class _Resource:
    """What files and folders share: identity, times, moves, copies, deletes."""

    provider: DriveProvider
    environ: dict[str, Any]
    path: str
    info: NodeInfo | None

    def get_ref_url(self) -> str:
        """The key WsgiDAV's lock manager uses: per user, since every user has a '/'."""
        return quote(ref_prefix(self.environ) + self.path)

    # dead properties: stored by node id in SQL; a listing prefetches its members'

    def dead_properties(self) -> dict[str, bytes]:
        if self.info is None:
            return {}
        cache: dict[NodeId, dict[str, bytes]] = self.environ.setdefault("drivegate.props", {})
        if self.info.id not in cache:
            cache.update(self.provider.drive.properties(_user(self.environ).id, [self.info.id]))
        return cache.get(self.info.id, {})

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        names: list[str] = super().get_property_names(is_allprop=is_allprop)  # type: ignore[misc]
        if self.info is not None and self.info.sha256 is not None:
            names.append(checksums.CHECKSUMS)
        return names + list(self.dead_properties())

    def get_property_value(self, name: str) -> Any:
        if name == checksums.CHECKSUMS:
            value = checksums.element(self.info.sha256 if self.info else None)
            if value is None:
                raise DAVError(HTTP_NOT_FOUND)
            return value
        if _is_dead(name):
            value = self.dead_properties().get(name)
            if value is None:
                raise DAVError(HTTP_NOT_FOUND)
            return xml_tools.string_to_xml(value)
        return super().get_property_value(name)  # type: ignore[misc]

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> Any:
        if name == checksums.CHECKSUMS:
            raise DAVError(HTTP_FORBIDDEN, err_condition=PRECONDITION_CODE_ProtectedProperty)
        if name == OC_LASTMODIFIED:
            return self._set_oc_lastmodified(value, dry_run=dry_run)
        if not _is_dead(name):
            return super().set_property_value(name, value, dry_run=dry_run)  # type: ignore[misc]
        stored = None if value is None else _storable(value)
        with dav_errors():
            self.provider.drive.set_properties(
                _user(self.environ).id, self.path, {name: stored}, dry_run=dry_run
            )
        if self.info is not None:
            self.environ.get("drivegate.props", {}).pop(self.info.id, None)
        return True

    def _set_oc_lastmodified(self, value: Any, *, dry_run: bool) -> bool:
        """ownCloud's ``{DAV:}lastmodified`` PROPPATCH: seconds since the epoch, as
        ``X-OC-Mtime`` takes them (rclone's owncloud and nextcloud vendors send it
        to change a file's time without uploading it again)."""
        try:
            mtime = parse_mtime(value.text if value is not None else None)
        except ValueError as error:
            raise DAVError(HTTP_BAD_REQUEST, context_info=f"lastmodified: {error}") from None
        if mtime is None:
            raise DAVError(HTTP_FORBIDDEN, err_condition=PRECONDITION_CODE_ProtectedProperty)
        if not dry_run:
            with dav_errors():
                self.info = self.provider.drive.set_mtime(_user(self.environ).id, self.path, mtime)
        return True

    def remove_all_properties(self, *, recursive: bool) -> None:
        """Properties live and die with their node (trash keeps them, purge drops them)."""

    def get_creation_date(self) -> float | None:
        return self.info.created_at if self.info else None

    def get_last_modified(self) -> float | None:
        # Whole seconds, as HTTP dates have them: with the fraction, a file would
        # always look newer than its own Last-Modified (If-Modified-Since never 304).
        return int(self.info.mtime) if self.info else None

    def get_display_name(self) -> str:
        return self.info.name if self.info and self.info.name else util.get_uri_name(self.path)

    def set_last_modified(self, dest_path: str, time_stamp: Any, *, dry_run: bool) -> bool:
        if isinstance(time_stamp, str):
            parsed = util.parse_time_string(time_stamp)
            if parsed is None:
                return False
            time_stamp = parsed
        if not dry_run:
            with dav_errors():
                self.info = self.provider.drive.set_mtime(
                    _user(self.environ).id, dest_path, int(float(time_stamp) * 1e9)
                )
        return True

    def _check_locks(self, depth: str) -> None:
        """Refuse (423) when a lock the request does not hold covers this resource.

        WsgiDAV checks only the parent before a native DELETE, so the
        resource's own (and, for folders, its members') locks are checked here.
        """
        lock_manager = self.provider.lock_manager
        if lock_manager is not None:
            lock_manager.check_write_permission(
                url=self.get_ref_url(),
                depth=depth,
                token_list=self.environ.get("wsgidav.ifLockTokenList", []),
                principal=self.environ.get("wsgidav.user_name"),
            )

    def _drop_locks(self) -> None:
        """Locks do not travel with a moved or deleted resource (RFC 4918 §7.7)."""
        if self.provider.lock_manager is not None:
            self.provider.lock_manager.remove_all_locks_from_url(self.get_ref_url(), recursive=True)

    def handle_delete(self) -> bool:
        self._check_locks("infinity")
        with changing(self.environ):
            self.provider.drive.delete(_user(self.environ).id, self.path)
        self._drop_locks()
        return True

    def handle_move(self, dest_path: str) -> bool:
        user = _user(self.environ).id
        overwrite = _overwrite(self.environ)
        with changing(self.environ), _taken_is_412(overwrite=overwrite):
            self.provider.drive.move(user, self.path, dest_path, overwrite=overwrite)
            self._drop_locks()
            mtime = parse_mtime(self.environ.get("HTTP_X_OC_MTIME"))
            if mtime is not None:
                self.provider.drive.set_mtime(user, dest_path, mtime)
        return True

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        user = _user(self.environ).id
        overwrite = _overwrite(self.environ)
        with changing(self.environ), _taken_is_412(overwrite=overwrite):
            self.provider.drive.copy(
                user, self.path, dest_path, overwrite=overwrite, recursive=depth_infinity
            )
            mtime = parse_mtime(self.environ.get("HTTP_X_OC_MTIME"))
            if mtime is not None:
                self.provider.drive.set_mtime(user, dest_path, mtime)
        return True

    def get_used_bytes(self) -> int:
        return self.provider.usage(self.environ)[0]

    def get_available_bytes(self) -> int | None:
        return self.provider.usage(self.environ)[1]


def _init(resource: _Resource, provider: DriveProvider, path: str, environ: dict[str, Any],
          info: NodeInfo | None, *, is_collection: bool) -> None:  # fmt: skip
    """What ``_DAVResource.__init__`` sets, without its per-call asserts and URI
    parsing: a listing builds one resource per member."""
    resource.provider = provider
    resource.path = path
    resource.is_collection = is_collection  # type: ignore[attr-defined]
    resource.environ = environ
    resource.name = info.name if info is not None and info.name else util.get_uri_name(path)  # type: ignore[attr-defined]
    resource.info = info


class FolderResource(_Resource, DAVCollection):
    """A folder of the user's drive."""

    def __init__(self, provider: DriveProvider, path: str, environ: dict[str, Any],
                 info: NodeInfo) -> None:  # fmt: skip
        _init(self, provider, path, environ, info, is_collection=True)

    def get_member_list(self) -> list[FileResource | FolderResource]:
        drive = self.provider.drive
        user = _user(self.environ).id
        with changing(self.environ):
            children, props = drive.listdir_with_properties(user, self.path)
            self.environ.setdefault("drivegate.props", {}).update(props)
        base = self.path.rstrip("/") + "/"
        resource_for = self.provider.resource_for
        return [resource_for(base + c.name, c, self.environ) for c in children]

    def get_member_names(self) -> list[str]:
        with dav_errors():
            return [c.name for c in self.provider.drive.listdir(_user(self.environ).id, self.path)]

    def get_etag(self) -> None:
        return None

    def support_recursive_delete(self) -> bool:
        return True

    def support_recursive_move(self, dest_path: str) -> bool:
        return True

    def create_collection(self, name: str) -> None:
        mtime = parse_mtime(self.environ.get("HTTP_X_OC_MTIME"))
        with changing(self.environ):
            self.provider.drive.mkdir(
                _user(self.environ).id, util.join_uri(self.path, name), mtime_ns=mtime
            )

    def create_empty_resource(self, name: str) -> FileResource:
        """For PUT: a file that exists once its body commits. For LOCK on an unmapped
        URL: an empty file, created now (the lock-null resource of RFC 4918)."""
        path = util.join_uri(self.path, name)
        resource = FileResource(self.provider, path, self.environ, None)
        if self.environ.get("REQUEST_METHOD") != "PUT":
            resource.store(_BodyStream([]), expected_size=0)
        return resource


class FileResource(_Resource, Readable, DAVNonCollection):
    """A file of the user's drive (``info`` None: about to be created by a PUT)."""

    def __init__(self, provider: DriveProvider, path: str, environ: dict[str, Any],
                 info: NodeInfo | None) -> None:  # fmt: skip
        _init(self, provider, path, environ, info, is_collection=False)

    def get_content_length(self) -> int:
        return self.info.size if self.info else 0

    def get_content_type(self) -> str:
        return content_type(self.path)

    def get_etag(self) -> str | None:
        return etag_of(self.info.version_id, self.info.manifest_id) if self.info else None

    def get_content(self) -> ContentReader:
        # The version this resource was looked up at: its length and ETag are already
        # in the headers, and a commit may have landed since.
        number = self.info.version_number if self.info else None
        with dav_errors():
            return self.provider.drive.open_read(_user(self.environ).id, self.path, number)

    def begin_write(self, *, content_type: str | None = None) -> _PutSink:
        return _PutSink(self)

    def end_write(self, *, with_errors: bool) -> None:
        """Nothing to finish: ``store`` committed or failed already."""

    def store(self, body: _BodyStream, expected_size: int | None) -> None:
        """Commit ``body`` as the new content (compare-and-set when the client sent
        If-Match, so a write racing in after the header check still loses)."""
        environ = self.environ
        base: VersionId | None = None
        if self.info is not None and environ.get("HTTP_IF_MATCH", "").strip() not in ("", "*"):
            base = self.info.version_id
        with changing(self.environ):
            self.info = self.provider.drive.write(
                _user(environ).id,
                self.path,
                body,
                expected_size=expected_size,
                base_version_id=base,
                create_only=self.info is None and environ.get("HTTP_IF_NONE_MATCH") == "*",
                mtime_ns=parse_mtime(environ.get("HTTP_X_OC_MTIME")),
                origin="webdav",
            )
