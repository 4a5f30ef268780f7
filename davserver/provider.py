"""``DriveProvider``: WsgiDAV's view of each user's drive (every user sees their own root)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from wsgidav.dav_provider import DAVProvider

from core import Drive, DriveError, NodeInfo, NotFound, UserInfo
from davserver.errors import to_dav_error
from davserver.resources import FileResource, FolderResource


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
    ) -> FileResource | FolderResource | None:
        user: UserInfo = environ["drivegate.user"]
        try:
            info = self.drive.stat(user.id, path)
        except NotFound:
            return None
        except DriveError as error:
            raise to_dav_error(error) from error
        return self.resource_for(path, info, environ)

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
