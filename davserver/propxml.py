"""Rendering one PROPFIND ``<D:response>`` of a drive file or folder as bytes, fast.

WsgiDAV's generic path asks a resource for each property through several
layers and builds an lxml tree per response: ~0.2 ms per member, two seconds
for a folder of 10,000 files. For our own resources every live property is a
field of the ``NodeInfo`` already in hand and dead properties are stored as
serialised XML, so the response is formatted directly here (~10x faster).
The output has the shape WsgiDAV's ``util.add_property_response`` gives
(one ``propstat`` per status); anything unusual (a locked member's
``lockdiscovery``) is still built by WsgiDAV and serialised in place.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

from lxml import etree
from wsgidav import util

if TYPE_CHECKING:
    from davserver.resources import FileResource, FolderResource

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


@functools.lru_cache(maxsize=1024)
def empty_element(name: str) -> str:
    """``<D:local/>``, or an element carrying its own namespace declaration."""
    namespace, local = split_clark(name)
    if namespace == "DAV:":
        return f"<D:{local}/>"
    if not namespace:
        return f"<{local}/>"
    return f"<ns0:{local} xmlns:ns0={quoteattr(namespace)}/>"


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


def property_values(resource: FileResource | FolderResource) -> dict[str, str]:
    """Every property of the resource (what ``allprop`` shows), as rendered elements."""
    info = resource.info
    assert info is not None
    values = {
        "{DAV:}resourcetype": "<D:resourcetype><D:collection/></D:resourcetype>"
        if info.is_folder
        else "<D:resourcetype/>",
        "{DAV:}creationdate": _dav("creationdate", util.get_rfc3339_time(info.created_at)),
    }
    if not info.is_folder:
        values["{DAV:}getcontentlength"] = _dav("getcontentlength", str(info.size))
        values["{DAV:}getcontenttype"] = _dav("getcontenttype", escape(resource.get_content_type()))
    used, available = resource.provider.usage(resource.environ)
    values["{DAV:}quota-used-bytes"] = _dav("quota-used-bytes", str(used))
    if available is not None:
        values["{DAV:}quota-available-bytes"] = _dav("quota-available-bytes", str(available))
    values["{DAV:}getlastmodified"] = _dav("getlastmodified", util.get_rfc1123_time(info.mtime))
    values["{DAV:}displayname"] = _dav("displayname", escape(resource.get_display_name()))
    etag = resource.get_etag()
    if etag is not None:
        values["{DAV:}getetag"] = _dav("getetag", escape(etag))
    values[LOCKDISCOVERY] = _lock_discovery(resource)
    values[SUPPORTEDLOCK] = _supported_lock()
    for name, stored in resource.dead_properties().items():
        values[name] = stored.decode("utf-8")
    return values


def _lock_discovery(resource: FileResource | FolderResource) -> str:
    manager = resource.provider.lock_manager
    if manager is None or not manager.get_url_lock_list(resource.get_ref_url()):
        return "<D:lockdiscovery/>"
    element = resource.get_property_value(LOCKDISCOVERY)
    return str(etree.tostring(element, encoding="unicode"))


def _propstat(elements: Iterable[str], status: str) -> str:
    props = "".join(elements)
    return f"<D:propstat><D:prop>{props}</D:prop><D:status>{status}</D:status></D:propstat>"


def response(resource: FileResource | FolderResource, mode: str, names: list[str] | None) -> bytes:
    """The ``<D:response>`` for ``allprop``, ``name`` or ``named`` (with ``names``)."""
    values = property_values(resource)
    parts = ['<D:response xmlns:D="DAV:"><D:href>', escape(resource.get_href()), "</D:href>"]
    if mode == "allprop":
        parts.append(_propstat(values.values(), OK))
    elif mode == "name":
        parts.append(_propstat(map(empty_element, values), OK))
    else:
        wanted = names or []
        found = [values[name] for name in wanted if name in values]
        missing = [empty_element(name) for name in wanted if name not in values]
        if found:
            parts.append(_propstat(found, OK))
        if missing:
            parts.append(_propstat(missing, NOT_FOUND))
    parts.append("</D:response>")
    return "".join(parts).encode("utf-8")
