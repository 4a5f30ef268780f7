"""Hostile XML: the one hardened parse every WebDAV request body, dead property and
lock owner goes through before WsgiDAV or the database sees it.

No WebDAV client needs a DTD, and a DTD is how external entities, entity bombs
and unresolvable entity references get in. A byte search for ``<!DOCTYPE``
misses a body in UTF-16 or UTF-32 (with or without a byte order mark), so the
body is parsed here by libxml2 itself, in whatever encoding it declares or
starts with, with entities left unresolved, no DTD loaded, no network and no
huge-tree allowance; a document that has a DTD or an entity reference is
refused, whatever its encoding.
"""

from __future__ import annotations

from lxml import etree


class UnsafeXml(ValueError):
    """A body or fragment that is not well-formed, or holds a DTD or an entity."""


def _parser() -> etree.XMLParser:
    # A parser is not safe to share between threads: one per call (cheap).
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,
    )


def parse_guarded(data: bytes) -> etree._Element:
    """The root of the XML document ``data``; raises ``UnsafeXml`` when it is not
    well-formed or carries a DTD (internal or external) or any entity reference."""
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as error:
        raise UnsafeXml(f"malformed XML: {error}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXml("XML bodies may not contain a DTD or entities")
    if next(root.iter(etree.Entity), None) is not None:
        raise UnsafeXml("XML bodies may not contain a DTD or entities")
    return root


def checked_fragment(element: etree._Element) -> bytes:
    """``element`` serialised as stored (dead property, lock owner), after checking
    that the bytes parse back: nothing that would break every later PROPFIND or
    lock discovery of its resource is ever stored. Raises ``UnsafeXml``."""
    data: bytes = etree.tostring(element)
    parse_guarded(data)
    return data
