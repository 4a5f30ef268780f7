"""A streamed PROPFIND for ``Depth: 0`` and ``Depth: 1``.

WsgiDAV builds the whole multistatus document in memory before sending a
byte. Here the members are fetched in one go (one query for the listing, one
for their dead properties, one for their locks) and each ``<response>`` is
serialised and sent as it is built, in blocks of about 64 KiB, so a folder
of 100,000 files costs the same few queries and little memory.

Requests with conditional headers (rare for PROPFIND) go to WsgiDAV's own
handler, which evaluates them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from lxml import etree
from wsgidav import util
from wsgidav.dav_error import HTTP_BAD_REQUEST, DAVError

from davserver.dav import propxml
from davserver.dav.locks import owner_and_path
from davserver.dav.resources import FileResource, FolderResource

if TYPE_CHECKING:
    from davserver.dav.provider import DriveProvider

CONDITIONAL_HEADERS = (
    "HTTP_IF",
    "HTTP_IF_MATCH",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_UNMODIFIED_SINCE",
)
BLOCK = 64 * 1024
HEAD = b'<?xml version="1.0" encoding="utf-8" ?>\n<D:multistatus xmlns:D="DAV:">'
TAIL = b"</D:multistatus>"
ALLPROP = etree.XML(b"<D:propfind xmlns:D='DAV:'><D:allprop/></D:propfind>")


def wanted_properties(environ: dict[str, Any]) -> tuple[str, list[str] | None]:
    """The PROPFIND body as (mode, names): ``allprop``, ``name`` or ``named`` + names."""
    request = util.parse_xml_body(environ, allow_empty=True)
    if request is None:
        request = ALLPROP
    if request.tag != "{DAV:}propfind":
        raise DAVError(HTTP_BAD_REQUEST, context_info="expected a DAV:propfind body")
    if any(child.tag == "{DAV:}prop" for child in request):
        if any(child.tag in ("{DAV:}allprop", "{DAV:}propname") for child in request):
            raise DAVError(HTTP_BAD_REQUEST, context_info="allprop/propname exclude prop")
        names = [
            element.tag
            for prop in request.iterfind("{DAV:}prop")
            for element in prop
            if isinstance(element.tag, str)
        ]
        return "named", names
    if request.find("{DAV:}propname") is not None:
        if request.find("{DAV:}allprop") is not None:
            raise DAVError(HTTP_BAD_REQUEST, context_info="allprop and propname exclude each other")
        return "name", None
    return "allprop", None


def streamed_propfind(
    provider: DriveProvider,
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    default_handler: Callable[..., Any],
) -> Any:
    depth = environ.get("HTTP_DEPTH")
    if depth not in ("0", "1") or any(header in environ for header in CONDITIONAL_HEADERS):
        return default_handler(environ, start_response)
    resource: Any = provider.get_resource_inst(environ["PATH_INFO"], environ)
    if resource is None:
        return default_handler(environ, start_response)  # WsgiDAV's 404
    mode, names = wanted_properties(environ)
    members: list[Any] = [resource]
    if depth == "1" and resource.is_collection:
        members.extend(resource.get_member_list())
    start_response(
        "207 Multi-Status",
        [("Content-Type", "application/xml; charset=utf-8"), ("Date", util.get_rfc1123_time())],
    )
    return _multistatus(members, mode, names, provider.lock_snapshot(environ))


def _lock_roots(resource: FileResource | FolderResource) -> list[str]:
    """The drive paths of the locks at or below ``resource`` (from the snapshot)."""
    manager = resource.provider.lock_manager
    if manager is None:
        return []
    locks = manager.get_url_lock_list(resource.get_ref_url(), recursive=True)
    located = (owner_and_path(lock["root"]) for lock in locks)
    return [where[1] for where in located if where is not None]


def _multistatus(
    members: list[Any], mode: str, names: list[str] | None, locks: AbstractContextManager[None]
) -> Iterator[bytes]:
    """The body; ``locks`` answers every member's lock lookups from one query."""
    pending = [HEAD]
    size = len(HEAD)
    with locks:
        common = None
        first = members[0]
        if mode == "allprop" and isinstance(first, (FileResource, FolderResource)):
            common = propxml.shared(first, _lock_roots(first))
        for member in members:
            if common is not None and isinstance(member, (FileResource, FolderResource)):
                block = propxml.allprop(member, common).encode("utf-8")
            elif isinstance(member, (FileResource, FolderResource)):
                block = propxml.response(member, mode, names)
            else:
                holder = etree.Element("{DAV:}multistatus", nsmap={"D": "DAV:"})
                util.add_property_response(
                    holder, member.get_href(), member.get_properties(mode, name_list=names)
                )
                block = etree.tostring(holder[0])
            pending.append(block)
            size += len(block)
            if size >= BLOCK:
                yield b"".join(pending)
                pending, size = [], 0
    pending.append(TAIL)
    yield b"".join(pending)
