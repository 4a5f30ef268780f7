"""The read-only collections ``/.versions`` and ``/.trash`` of every user's drive.

``/.versions`` mirrors the live tree; below it each file is a folder that
lists the file's versions as files named ``report (v3, 2026-11-21 10-22-33).odt``
(number and UTC time of the version, same extension). A version can be read,
and COPYed back over the live file (a restore: a new version sharing the old
one's manifest) or anywhere else.

``/.trash`` lists the trashed items with their original place in the property
``{urn:drivegate}original-location``. Items (and whatever is inside a trashed
folder) can be read; MOVE out of the trash restores to the destination, DELETE
purges an item, DELETE of ``/.trash`` itself empties the trash.

Everything else (PUT, MKCOL, PROPPATCH, LOCK, moving into these collections)
answers 403. Neither name is a node, so the root's listing does not show them.
"""

from __future__ import annotations

import time
import unicodedata
from collections import Counter
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

from wsgidav import util
from wsgidav.dav_error import HTTP_FORBIDDEN, HTTP_NOT_FOUND, DAVError
from wsgidav.dav_provider import DAVCollection, DAVNonCollection

from core import ContentReader, NodeId, NodeInfo, NotFound, TrashEntry, UserInfo, VersionInfo
from core.names import join_path
from davserver.dav.errors import dav_errors
from davserver.dav.resources import Readable, changing, content_type, etag_of, parse_mtime

if TYPE_CHECKING:
    from davserver.dav.provider import DriveProvider

VERSIONS = ".versions"
TRASH = ".trash"
VIRTUAL_ROOTS = frozenset({VERSIONS, TRASH})
ORIGINAL_LOCATION = "{urn:drivegate}original-location"
DELETED_AT = "{urn:drivegate}deleted-at"


def is_virtual(path: str) -> bool:
    """True for ``/.versions`` and ``/.trash`` and anything below them."""
    return path.strip("/").split("/", 1)[0] in VIRTUAL_ROOTS


def _user(environ: dict[str, Any]) -> UserInfo:
    user: UserInfo = environ["drivegate.user"]
    return user


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H-%M-%S", time.gmtime(seconds))


def version_name(file_name: str, version: VersionInfo) -> str:
    """``report (v3, 2026-11-21 10-22-33).odt``: number and UTC time, same extension."""
    path = PurePosixPath(file_name)
    stem, suffix = (path.stem, path.suffix) if path.stem else (file_name, "")
    return f"{stem} (v{version.number}, {_stamp(version.created_at)}){suffix}"


def trash_names(entries: list[TrashEntry]) -> dict[str, TrashEntry]:
    """A unique name per trash entry: its own name, or with the deletion time when two
    trashed items share a name (and the entry id if even that collides)."""
    counts = Counter(entry.name for entry in entries)
    named: dict[str, TrashEntry] = {}
    for entry in sorted(entries, key=lambda e: e.id):
        name = entry.name
        if counts[name] > 1:
            path = PurePosixPath(name)
            stem, suffix = (path.stem, path.suffix) if path.stem else (name, "")
            name = f"{stem} (deleted {_stamp(entry.trashed_at)}){suffix}"
            if name in named:
                name = f"{stem} (deleted {_stamp(entry.trashed_at)}, {entry.id}){suffix}"
        named[name] = entry
    return named


def _forbidden(what: str) -> DAVError:
    return DAVError(HTTP_FORBIDDEN, context_info=f"{what}: /.versions and /.trash are read-only")


class ReadOnlyResource:
    """What every virtual resource shares: per-user lock keys, and refusing writes."""

    provider: DriveProvider
    environ: dict[str, Any]
    path: str

    def get_ref_url(self) -> str:
        return quote(f"/~{_user(self.environ).id}{self.path}")

    def prevent_locking(self) -> bool:
        return True

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> Any:
        raise _forbidden("PROPPATCH")

    def remove_all_properties(self, *, recursive: bool) -> None:
        """No properties of their own to remove."""

    def remove_all_locks(self, *, recursive: bool) -> None:
        """Never locked."""

    def handle_delete(self) -> bool:
        raise _forbidden("DELETE")

    def handle_move(self, dest_path: str) -> bool:
        raise _forbidden("MOVE")

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        raise _forbidden("COPY")

    def support_recursive_delete(self) -> bool:
        return True

    def support_recursive_move(self, dest_path: str) -> bool:
        return True

    def create_collection(self, name: str) -> None:
        raise _forbidden("MKCOL")

    def create_empty_resource(self, name: str) -> None:
        raise _forbidden("PUT")

    def begin_write(self, *, content_type: str | None = None) -> None:
        raise _forbidden("PUT")

    def get_etag(self) -> str | None:
        return None


def _check_destination(dest_path: str) -> None:
    if is_virtual(dest_path):
        raise _forbidden("the destination")


# /.versions ------------------------------------------------------------------


class _OfNode(ReadOnlyResource):
    """A virtual resource that shows a node (live, or in the trash): its name and times."""

    info: NodeInfo

    def get_display_name(self) -> str:
        return self.info.name or util.get_uri_name(self.path)

    def get_last_modified(self) -> float:
        return int(self.info.mtime)  # whole seconds, as HTTP dates have them

    def get_creation_date(self) -> float:
        return self.info.created_at


class _Mirror(_OfNode, DAVCollection):
    """A collection below ``/.versions`` that stands for the live node ``info``."""

    def __init__(
        self, provider: DriveProvider, path: str, environ: dict[str, Any], info: NodeInfo
    ) -> None:
        DAVCollection.__init__(self, path, environ)
        self.provider = provider
        self.info = info

    @property
    def drive_path(self) -> str:
        return self.path[len(VERSIONS) + 1 :] or "/"

    def get_member_names(self) -> list[str]:
        return [member.name for member in self.get_member_list()]


class VersionsFolder(_Mirror):
    """``/.versions/<folder>``: the live folder's subfolders and files, all as folders."""

    def get_member_list(self) -> list[VersionsFolder | FileHistory]:
        with dav_errors():
            children = self.provider.drive.listdir(_user(self.environ).id, self.drive_path)
        members: list[VersionsFolder | FileHistory] = []
        for child in children:
            path = util.join_uri(self.path, child.name)
            kind = VersionsFolder if child.is_folder else FileHistory
            members.append(kind(self.provider, path, self.environ, child))
        return members


class FileHistory(_Mirror):
    """``/.versions/<file>``: the file's versions, oldest first."""

    def get_member_list(self) -> list[VersionFile]:
        with dav_errors():
            history = self.provider.drive.versions(_user(self.environ).id, self.drive_path)
        return [
            VersionFile(self.provider, util.join_uri(self.path, name), self.environ, self, v)
            for v in history
            for name in [version_name(self.info.name, v)]
        ]

    def member(self, name: str) -> VersionFile | None:
        return next((m for m in self.get_member_list() if m.name == name), None)


class VersionFile(ReadOnlyResource, Readable, DAVNonCollection):
    """One version of a file: readable, and COPYable back (= restore) or elsewhere."""

    def __init__(
        self,
        provider: DriveProvider,
        path: str,
        environ: dict[str, Any],
        history: FileHistory,
        version: VersionInfo,
    ) -> None:
        DAVNonCollection.__init__(self, path, environ)
        self.provider = provider
        self.history = history
        self.version = version

    def get_content_length(self) -> int:
        return self.version.size

    def get_content_type(self) -> str:
        return content_type(self.history.info.name)

    def get_last_modified(self) -> float:
        return self.version.mtime_ns // 1_000_000_000

    def get_creation_date(self) -> float:
        return self.version.created_at

    def get_etag(self) -> str | None:
        return etag_of(self.version.id, self.version.manifest_id)

    def get_content(self) -> ContentReader:
        with dav_errors():
            return self.provider.drive.open_read(
                _user(self.environ).id, self.history.drive_path, self.version.number
            )

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        _check_destination(dest_path)
        with dav_errors():
            self.provider.drive.copy_version(
                _user(self.environ).id,
                self.history.drive_path,
                self.version.number,
                dest_path,
                overwrite=True,  # WsgiDAV already answered 412 for "Overwrite: F"
                mtime_ns=parse_mtime(self.environ.get("HTTP_X_OC_MTIME")),
            )
        return True


# /.trash ---------------------------------------------------------------------


class TrashedItem(NamedTuple):
    """A trash entry, the names leading below it (none for the entry), and the node there."""

    entry: TrashEntry
    names: list[str]
    info: NodeInfo


class _Trashed(_OfNode):
    """An item in the trash (an entry, or something inside a trashed folder)."""

    entry: TrashEntry
    names: list[str]

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        names: list[str] = super().get_property_names(is_allprop=is_allprop)  # type: ignore[misc]
        return [*names, ORIGINAL_LOCATION, DELETED_AT]

    def get_property_value(self, name: str) -> Any:
        if name == ORIGINAL_LOCATION:
            return join_path([*self.entry.original_path.strip("/").split("/"), *self.names])
        if name == DELETED_AT:
            return util.get_rfc1123_time(self.entry.trashed_at)
        return super().get_property_value(name)  # type: ignore[misc]

    def handle_move(self, dest_path: str) -> bool:
        """MOVE out of the trash restores the item to the destination."""
        _check_destination(dest_path)
        with changing(self.environ):
            self.provider.drive.restore_trash_to(
                _user(self.environ).id, self.entry.id, self.names, dest_path, overwrite=True
            )
        return True

    def handle_delete(self) -> bool:
        if self.names:
            raise _forbidden("DELETE inside a trashed folder (purge the whole item)")
        with changing(self.environ):
            self.provider.drive.purge_trash(_user(self.environ).id, self.entry.id)
        return True


class TrashFolder(_Trashed, DAVCollection):
    def __init__(
        self, provider: DriveProvider, path: str, environ: dict[str, Any], item: TrashedItem
    ) -> None:
        DAVCollection.__init__(self, path, environ)
        self.provider, self.entry, self.names, self.info = provider, *item

    def get_member_list(self) -> list[TrashFolder | TrashFile]:
        user = _user(self.environ).id
        with changing(self.environ):
            children = self.provider.drive.list_trashed(user, self.entry.id, self.names)
        return [
            trashed_resource(
                self.provider,
                util.join_uri(self.path, child.name),
                self.environ,
                TrashedItem(self.entry, [*self.names, child.name], child),
            )
            for child in children
        ]

    def get_member_names(self) -> list[str]:
        return [member.name for member in self.get_member_list()]


class TrashFile(_Trashed, Readable, DAVNonCollection):
    def __init__(
        self, provider: DriveProvider, path: str, environ: dict[str, Any], item: TrashedItem
    ) -> None:
        DAVNonCollection.__init__(self, path, environ)
        self.provider, self.entry, self.names, self.info = provider, *item

    def get_content_length(self) -> int:
        return self.info.size

    def get_content_type(self) -> str:
        return content_type(self.info.name)

    def get_etag(self) -> str | None:
        return etag_of(self.info.version_id, self.info.manifest_id)

    def get_content(self) -> ContentReader:
        with dav_errors():
            return self.provider.drive.open_trashed(
                _user(self.environ).id, self.entry.id, self.names
            )


def trashed_resource(
    provider: DriveProvider, path: str, environ: dict[str, Any], item: TrashedItem
) -> TrashFolder | TrashFile:
    kind = TrashFolder if item.info.is_folder else TrashFile
    return kind(provider, path, environ, item)


class TrashRoot(ReadOnlyResource, DAVCollection):
    """``/.trash``: one member per trashed item, newest first."""

    def __init__(self, provider: DriveProvider, environ: dict[str, Any]) -> None:
        DAVCollection.__init__(self, "/" + TRASH, environ)
        self.provider = provider

    def get_display_name(self) -> str:
        return TRASH

    def entries(self) -> dict[str, TrashEntry]:
        with dav_errors():
            return trash_names(self.provider.drive.trash(_user(self.environ).id))

    def get_member_list(self) -> list[TrashFolder | TrashFile]:
        with dav_errors():
            infos = self.provider.drive.trashed_entries(_user(self.environ).id)
        return [
            trashed_resource(
                self.provider,
                util.join_uri(self.path, name),
                self.environ,
                TrashedItem(entry, [], infos[entry.id]),
            )
            for name, entry in self.entries().items()
            if entry.id in infos
        ]

    def get_member_names(self) -> list[str]:
        return list(self.entries())

    def handle_delete(self) -> bool:
        """DELETE /.trash empties the trash."""
        user = _user(self.environ).id
        with changing(self.environ):
            for entry in self.provider.drive.trash(user):
                self.provider.drive.purge_trash(user, entry.id)
        return True


def virtual_resource(
    provider: DriveProvider, path: str, environ: dict[str, Any]
) -> ReadOnlyResource | None:
    """The virtual resource at ``path`` (below ``/.versions`` or ``/.trash``), or None."""
    names = [unicodedata.normalize("NFC", n) for n in path.strip("/").split("/") if n]
    user = _user(environ).id
    drive = provider.drive
    try:
        if names[0] == TRASH:
            root = TrashRoot(provider, environ)
            if len(names) == 1:
                return root
            entry = root.entries().get(names[1])
            if entry is None:
                return None
            info = drive.stat_trashed(user, NodeId(entry.id), names[2:])
            item = TrashedItem(entry, names[2:], info)
            return trashed_resource(provider, "/" + "/".join(names), environ, item)
        drive_path = join_path(names[1:])
        try:
            info = drive.stat(user, drive_path)
        except NotFound:
            # Not a live node: maybe ``<file>/<version name>``.
            if len(names) < 3:
                return None
            history = virtual_resource(provider, "/" + "/".join(names[:-1]), environ)
            return history.member(names[-1]) if isinstance(history, FileHistory) else None
        kind = VersionsFolder if info.is_folder else FileHistory
        return kind(provider, "/" + "/".join(names), environ, info)
    except NotFound:
        return None
    except DAVError as error:
        if error.value == HTTP_NOT_FOUND:
            return None
        raise
