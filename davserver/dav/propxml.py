"""Rendering one PROPFIND ``<D:response>`` of a drive file or folder as bytes, fast.

WsgiDAV's generic path asks a resource for each property through several
layers and builds an lxml tree per response, too slow for big folders. For
our own resources every live property is a field of the ``NodeInfo`` already
in hand and dead properties are stored as serialised XML, so the response is
formatted directly here, at a fraction of the cost.
The output has the shape WsgiDAV's ``util.add_property_response`` gives
(one ``propstat`` per status); anything unusual (a locked member's
``lockdiscovery``) is still built by WsgiDAV and serialised in place.
``allprop``, the most common body of all (an empty one), goes through a
single template per member, with what every member of a listing shares
rendered once (``Shared``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias
from xml.sax.saxutils import escape, quoteattr

from lxml import etree
from wsgidav import util

from davserver.dav import checksums

if TYPE_CHECKING:
    from core import NodeInfo
    from davserver.dav.resources import FileResource, FolderResource

    Member: TypeAlias = FileResource | FolderResource

OK = "HTTP/1.1 200 OK"
NOT_FOUND = "HTTP/1.1 404 Not Found"
LOCKDISCOVERY = "{DAV:}lockdiscovery"
SUPPORTEDLOCK = "{DAV:}supportedlock"


def split_clark(name: str) -> tuple[str, str]:
    """``{ns}local`` → (ns, local); a name without a namespace has ns ''."""
    if name.startswith("{"):
        namespace, _, local = name[1:].partition("}")
        return namespace, local
    return "", name


def empty_element(name: str) -> str:
    """``<D:local/>``, or an element carrying its own namespace declaration."""
    # Names come from clients' bodies: only short ones are cached, so that the
    # cache stays small whatever names a client asks for.
    return _empty_element(name) if len(name) <= 256 else _build_empty_element(name)


@functools.lru_cache(maxsize=1024)
def _empty_element(name: str) -> str:
    return _build_empty_element(name)


def _build_empty_element(name: str) -> str:
    namespace, local = split_clark(name)
    if namespace == "DAV:":
        return f"<D:{local}/>"
    if not namespace:
        return f"<{local}/>"
    return f"<ns0:{local} xmlns:ns0={quoteattr(namespace)}/>"


def _text(value: str) -> str:
    """XML character data (names and hrefs rarely need escaping: test first)."""
    if "&" in value or "<" in value or ">" in value:
        return escape(value)
    return value


def _dav(local: str, text: str) -> str:
    return f"<D:{local}>{text}</D:{local}>"


@functools.cache
def _supported_lock() -> str:
    element = etree.Element(SUPPORTEDLOCK, nsmap={"D": "DAV:"})
    for scope in ("exclusive", "shared"):
        entry = etree.SubElement(element, "{DAV:}lockentry")
        etree.SubElement(etree.SubElement(entry, "{DAV:}lockscope"), f"{{DAV:}}{scope}")
        etree.SubElement(etree.SubElement(entry, "{DAV:}locktype"), "{DAV:}write")
    return str(etree.tostring(element, encoding="unicode"))


_COLLECTION = "<D:resourcetype><D:collection/></D:resourcetype>"


def _info(resource: Member) -> NodeInfo:
    info = resource.info
    assert info is not None
    return info


# The members of a folder often share their times to the second: format each once.
@functools.lru_cache(maxsize=4096)
def _rfc1123_seconds(seconds: int) -> str:
    return str(util.get_rfc1123_time(seconds))


@functools.lru_cache(maxsize=4096)
def _rfc3339_seconds(seconds: int) -> str:
    return str(util.get_rfc3339_time(seconds))


def _rfc1123(seconds: float) -> str:
    return _rfc1123_seconds(math.floor(seconds))


def _rfc3339(seconds: float) -> str:
    return _rfc3339_seconds(math.floor(seconds))


def _resourcetype(resource: Member) -> str | None:
    return _COLLECTION if _info(resource).is_folder else "<D:resourcetype/>"


def _creationdate(resource: Member) -> str | None:
    return _dav("creationdate", _rfc3339(_info(resource).created_at))


def _getcontentlength(resource: Member) -> str | None:
    info = _info(resource)
    return None if info.is_folder else _dav("getcontentlength", str(info.size))


def _getcontenttype(resource: Member) -> str | None:
    if _info(resource).is_folder:
        return None
    return _dav("getcontenttype", escape(resource.get_content_type()))


def _quota_used(resource: Member) -> str | None:
    return _dav("quota-used-bytes", str(resource.provider.usage(resource.environ)[0]))


def _quota_available(resource: Member) -> str | None:
    available = resource.provider.usage(resource.environ)[1]
    return None if available is None else _dav("quota-available-bytes", str(available))


def _getlastmodified(resource: Member) -> str | None:
    return _dav("getlastmodified", _rfc1123(_info(resource).mtime))


def _displayname(resource: Member) -> str | None:
    return _dav("displayname", escape(resource.get_display_name()))


def _getetag(resource: Member) -> str | None:
    etag = resource.get_etag()
    return None if etag is None else _dav("getetag", escape(etag))


def _lock_discovery(resource: Member) -> str | None:
    manager = resource.provider.lock_manager
    if manager is None or not manager.get_url_lock_list(resource.get_ref_url()):
        return "<D:lockdiscovery/>"
    element = resource.get_property_value(LOCKDISCOVERY)
    return str(etree.tostring(element, encoding="unicode"))


def _supportedlock(resource: Member) -> str | None:
    return _supported_lock()


def _checksums(resource: Member) -> str | None:
    return checksums.rendered(_info(resource).sha256)


LIVE: dict[str, Callable[[Member], str | None]] = {
    "{DAV:}resourcetype": _resourcetype,
    "{DAV:}creationdate": _creationdate,
    "{DAV:}getcontentlength": _getcontentlength,
    "{DAV:}getcontenttype": _getcontenttype,
    "{DAV:}quota-used-bytes": _quota_used,
    "{DAV:}quota-available-bytes": _quota_available,
    "{DAV:}getlastmodified": _getlastmodified,
    "{DAV:}displayname": _displayname,
    "{DAV:}getetag": _getetag,
    LOCKDISCOVERY: _lock_discovery,
    SUPPORTEDLOCK: _supportedlock,
    checksums.CHECKSUMS: _checksums,
}
"""Every live property a drive file or folder shows, in ``allprop`` order, each with
its renderer (None: the resource has no such property)."""


def property_values(resource: Member) -> dict[str, str]:
    """Every property of the resource (what ``allprop`` shows), as rendered elements."""
    values = {}
    for name, render in LIVE.items():
        value = render(resource)
        if value is not None:
            values[name] = value
    for name, stored in resource.dead_properties().items():
        values[name] = stored.decode("utf-8")
    return values


def named_values(resource: Member, names: list[str]) -> tuple[list[str], list[str]]:
    """(found, missing) elements for the ``names`` asked for, rendering only those."""
    found: list[str] = []
    missing: list[str] = []
    dead: dict[str, bytes] | None = None
    for name in names:
        render = LIVE.get(name)
        if render is not None:
            value = render(resource)
        else:
            if dead is None:
                dead = resource.dead_properties()
            stored = dead.get(name)
            value = stored.decode("utf-8") if stored is not None else None
        if value is None:
            missing.append(empty_element(name))
        else:
            found.append(value)
    return found, missing


def _propstat(elements: Iterable[str], status: str) -> str:
    props = "".join(elements)
    return f"<D:propstat><D:prop>{props}</D:prop><D:status>{status}</D:status></D:propstat>"


def response(resource: Member, mode: str, names: list[str] | None) -> bytes:
    """The ``<D:response>`` for ``allprop``, ``name`` or ``named`` (with ``names``)."""
    parts = ['<D:response xmlns:D="DAV:"><D:href>', escape(resource.get_href()), "</D:href>"]
    if mode == "allprop":
        parts.append(_propstat(property_values(resource).values(), OK))
    elif mode == "name":
        parts.append(_propstat(map(empty_element, property_values(resource)), OK))
    else:
        found, missing = named_values(resource, names or [])
        if found:
            parts.append(_propstat(found, OK))
        if missing:
            parts.append(_propstat(missing, NOT_FOUND))
    parts.append("</D:response>")
    return "".join(parts).encode("utf-8")


@dataclass(frozen=True)
class Shared:
    """What every member's ``allprop`` answer has in common within one request,
    rendered once: the quota properties (per user), ``supportedlock``, and which
    members hold a lock of their own (most hold none: their ``lockdiscovery``
    is empty and needs no lookup)."""

    quota: str
    locked: frozenset[str]


def shared(resource: Member, lock_roots: Iterable[str]) -> Shared:
    """``Shared`` for a listing of ``resource``; ``lock_roots``: the drive paths of
    the locks at or below it."""
    quota = (_quota_used(resource) or "") + (_quota_available(resource) or "")
    return Shared(quota, frozenset(root.rstrip("/") or "/" for root in lock_roots))


_OK_TAIL = f"</D:prop><D:status>{OK}</D:status></D:propstat></D:response>"


def allprop(resource: Member, common: Shared) -> str:
    """The ``allprop`` ``<D:response>``: what ``response`` gives, through one template
    (a listing renders thousands of them)."""
    info = _info(resource)
    path = resource.path.rstrip("/") or "/"
    lock = _lock_discovery(resource) if path in common.locked else "<D:lockdiscovery/>"
    dead = "".join(value.decode("utf-8") for value in resource.dead_properties().values())
    head = f'<D:response xmlns:D="DAV:"><D:href>{_text(resource.get_href())}</D:href>'
    dates = f"<D:creationdate>{_rfc3339(info.created_at)}</D:creationdate>"
    modified = f"<D:getlastmodified>{_rfc1123(info.mtime)}</D:getlastmodified>"
    name = f"<D:displayname>{_text(resource.get_display_name())}</D:displayname>"
    if info.is_folder:
        return (
            f"{head}<D:propstat><D:prop>{_COLLECTION}{dates}{common.quota}{modified}{name}"
            f"{lock}{_supported_lock()}{dead}{_OK_TAIL}"
        )
    etag = resource.get_etag()
    tag = "" if etag is None else f"<D:getetag>{_text(etag)}</D:getetag>"
    sums = checksums.rendered(info.sha256) or ""
    return (
        f"{head}<D:propstat><D:prop><D:resourcetype/>{dates}"
        f"<D:getcontentlength>{info.size}</D:getcontentlength>"
        f"<D:getcontenttype>{_text(resource.get_content_type())}</D:getcontenttype>"
        f"{common.quota}{modified}{name}{tag}{lock}{_supported_lock()}{sums}{dead}{_OK_TAIL}"
    )
