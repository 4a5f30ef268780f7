"""``DriveProvider``: WsgiDAV's view of each user's drive (every user sees their own root)."""

from __future__ import annotations

import io
from contextlib import AbstractContextManager, nullcontext
from typing import Any
from urllib.parse import unquote, urlsplit

from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_FORBIDDEN,
    HTTP_LENGTH_REQUIRED,
    HTTP_REQUEST_ENTITY_TOO_LARGE,
    DAVError,
    PRECONDITION_CODE_PropfindFiniteDepth,
)
from wsgidav.dav_provider import DAVProvider

from core import Drive, DriveError, NodeInfo, UserInfo
from davserver.dav.errors import to_dav_error
from davserver.dav.locks import SqlLockStorage
from davserver.dav.propfind import streamed_propfind
from davserver.dav.rangeget import settle_range
from davserver.dav.resources import RESOURCES, FileResource, FolderResource
from davserver.dav.virtual import ReadOnlyResource, is_virtual, virtual_resource
from davserver.dav.xmlguard import UnsafeXml, checked_fragment, parse_guarded


class DriveProvider(DAVProvider):
    """Maps request paths to the authenticated user's nodes."""

    def __init__(self, drive: Drive) -> None:
        super().__init__()
        self.drive = drive

    def is_readonly(self) -> bool:
        return False

    def resource_for(
        self, path: str, info: NodeInfo, environ: dict[str, Any]
    ) -> FileResource | FolderResource:
        if info.is_folder:
            return FolderResource(self, path, environ, info)
        return FileResource(self, path, environ, info)

    def get_resource_inst(
        self, path: str, environ: dict[str, Any]
    ) -> FileResource | FolderResource | ReadOnlyResource | None:
        """The resource at ``path``. WsgiDAV asks for the same path several times per
        request, so answers are kept in the request until something changes."""
        known: dict[str, Any] = environ.setdefault(RESOURCES, {})
        if path not in known:
            if environ.get("REQUEST_METHOD") == "PUT" and path == environ.get("PATH_INFO"):
                self._prefetch_with_parent(path, environ, known)
            if path not in known:
                known[path] = self._resource(path, environ)
        resource: FileResource | FolderResource | ReadOnlyResource | None = known[path]
        return resource

    def _prefetch_with_parent(
        self, path: str, environ: dict[str, Any], known: dict[str, Any]
    ) -> None:
        """A PUT looks up its URL and then its parent folder: both in one transaction."""
        parent = util.get_uri_parent(path)
        if not parent or parent in known or is_virtual(path) or is_virtual(parent):
            return
        user: UserInfo = environ["drivegate.user"]
        try:
            infos = self.drive.find_many(user.id, [path, parent])
        except DriveError:
            return  # each is looked up on its own, with its own error
        for where, info in zip((path, parent), infos, strict=True):
            known[where] = self.resource_for(where, info, environ) if info is not None else None

    def _resource(
        self, path: str, environ: dict[str, Any]
    ) -> FileResource | FolderResource | ReadOnlyResource | None:
        if is_virtual(path):
            return virtual_resource(self, path, environ)
        user: UserInfo = environ["drivegate.user"]
        try:
            info = self.drive.find(user.id, path)
        except DriveError as error:
            raise to_dav_error(error) from error
        return self.resource_for(path, info, environ) if info is not None else None

    def custom_request_handler(
        self, environ: dict[str, Any], start_response: Any, default_handler: Any
    ) -> Any:
        """Checks WsgiDAV leaves to us, before its own handling of the request."""
        method = environ["REQUEST_METHOD"]
        refusal = _refuse(environ, method)
        if refusal is not None:
            return util.send_status_response(environ, start_response, refusal)
        if method == "PROPFIND":
            return streamed_propfind(self, environ, start_response, default_handler)
        if method in ("GET", "HEAD") and "HTTP_RANGE" in environ:
            answer = settle_range(self, environ, start_response)
            if answer is not None:
                return answer
        if method in ("COPY", "MOVE"):
            start_response = self._created_when_new(environ, start_response)
        with self.lock_snapshot(environ), self._all_or_nothing(method):
            return default_handler(environ, start_response)

    def _all_or_nothing(self, method: str) -> AbstractContextManager[None]:
        """A LOCK that fails after creating its lock removes it (WsgiDAV answers LOCK
        from a list built before it returns, so the whole work runs inside)."""
        if method != "LOCK" or self.lock_manager is None:
            return nullcontext()
        storage: SqlLockStorage = self.lock_manager.storage
        return storage.all_or_nothing()

    def lock_snapshot(self, environ: dict[str, Any]) -> AbstractContextManager[None]:
        """Answer this request's lock lookups from one query for all the user's locks
        (WsgiDAV looks up the URL, each ancestor and, for folders, the members)."""
        user: UserInfo | None = environ.get("drivegate.user")
        if self.lock_manager is None or user is None:
            return nullcontext()
        storage: SqlLockStorage = self.lock_manager.storage
        return storage.snapshot(f"/~{user.id}")

    def _created_when_new(self, environ: dict[str, Any], start_response: Any) -> Any:
        """A native COPY/MOVE to a new destination answers 201, not WsgiDAV's 204."""
        destination = _destination_path(environ)
        if not destination or self.exists(destination, environ):
            return start_response

        def created(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            if status.startswith("204"):
                status = "201 Created"
            return start_response(status, headers, *rest)

        return created

    def exists(self, path: str, environ: dict[str, Any]) -> bool:
        try:
            return self.get_resource_inst(path, environ) is not None
        except DAVError:
            return False

    def ref_url_to_path(self, ref_url: str) -> str:
        """Inverse of ``_Resource.get_ref_url``: drop the ``/~<user id>`` prefix."""
        path = unquote(ref_url)
        if path.startswith("/~"):
            _, _, rest = path[2:].partition("/")
            return "/" + rest
        return path

    def usage(self, environ: dict[str, Any]) -> tuple[int, int | None]:
        """(used, available) bytes of the user's quota, read once per request."""
        cached: tuple[int, int | None] | None = environ.get("drivegate.usage")
        if cached is None:
            user = self.drive.user_by_id(environ["drivegate.user"].id)
            available = None
            if user.quota_bytes is not None:
                available = max(0, user.quota_bytes - user.used_bytes - user.reserved_bytes)
            cached = environ["drivegate.usage"] = (user.used_bytes, available)
        return cached


def _destination_path(environ: dict[str, Any]) -> str:
    return unquote(urlsplit(environ.get("HTTP_DESTINATION", "")).path)


MAX_XML_BODY = 1024 * 1024
XML_METHODS = frozenset({"PROPFIND", "PROPPATCH", "LOCK", "REPORT"})


def _refuse(environ: dict[str, Any], method: str) -> DAVError | None:
    """The error for a request refused before any work, or None.

    XML bodies are capped (the parser holds them whole) and must pass the
    hardened parse (``xmlguard``); ``Depth: infinity`` PROPFIND (the default
    when no Depth is sent) would walk a whole drive; the root folder cannot be
    copied, moved, deleted or replaced.
    """
    if method in XML_METHODS:
        refusal = _refuse_xml_body(environ, method)
        if refusal is not None:
            return refusal
    if method in ("COPY", "MOVE", "DELETE") and environ.get("PATH_INFO", "").strip("/") == "":
        return DAVError(HTTP_FORBIDDEN, context_info=f"{method} of the root folder is not allowed")
    if method in ("COPY", "MOVE") and _destination_path(environ).strip("/") == "":
        return DAVError(HTTP_FORBIDDEN, context_info="the root folder cannot be replaced")
    if method in ("COPY", "MOVE") and is_virtual(_destination_path(environ)):
        return DAVError(HTTP_FORBIDDEN, context_info="/.versions and /.trash are read-only")
    if method == "PROPFIND" and environ.get("HTTP_DEPTH", "infinity").lower() == "infinity":
        return DAVError(
            HTTP_FORBIDDEN,
            context_info="Depth: infinity PROPFIND is not supported; use Depth: 1",
            err_condition=PRECONDITION_CODE_PropfindFiniteDepth,
        )
    return None


def _refuse_xml_body(environ: dict[str, Any], method: str) -> DAVError | None:
    """Buffer the (capped) body and refuse it unless it is well-formed XML without a
    DTD or entities, in any encoding (a LOCK's owner must also stay parseable once
    stored on its own)."""
    length = environ.get("CONTENT_LENGTH") or ""
    if not length and environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        return DAVError(HTTP_LENGTH_REQUIRED, context_info="XML bodies need a Content-Length")
    if length and not length.isdigit():
        return DAVError(HTTP_BAD_REQUEST, context_info="bad Content-Length")
    if not length or int(length) == 0:
        return None
    if int(length) > MAX_XML_BODY:
        return DAVError(
            HTTP_REQUEST_ENTITY_TOO_LARGE,
            context_info=f"XML request bodies are limited to {MAX_XML_BODY} bytes",
        )
    body = environ["wsgi.input"].read(int(length))
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        root = parse_guarded(body)
        if method == "LOCK":
            for owner in root.iterfind("{DAV:}owner"):
                checked_fragment(owner)
    except UnsafeXml as error:
        return DAVError(HTTP_BAD_REQUEST, context_info=str(error))
    return None
