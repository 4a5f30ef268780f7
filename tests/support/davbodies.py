"""Request bodies the WebDAV tests send."""

from __future__ import annotations


def exclusive_lock(owner: str | None = None) -> str:
    """A LOCK body for an exclusive write lock, with an optional raw owner element body."""
    owner_element = f"<D:owner>{owner}</D:owner>" if owner is not None else ""
    return (
        '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
        f"</D:lockscope><D:locktype><D:write/></D:locktype>{owner_element}</D:lockinfo>"
    )


def multistatus(body: bytes) -> dict[str, dict[str, str]]:
    """A 207 body as {unquoted href: {property name in Clark notation: text}} (200 props only)."""
    from urllib.parse import unquote

    from lxml import etree

    found: dict[str, dict[str, str]] = {}
    for response in etree.fromstring(body).iterfind("{DAV:}response"):
        href = unquote(response.findtext("{DAV:}href") or "")
        props: dict[str, str] = {}
        for propstat in response.iterfind("{DAV:}propstat"):
            if " 200 " not in (propstat.findtext("{DAV:}status") or ""):
                continue
            for prop in propstat.iterfind("{DAV:}prop/*"):
                props[prop.tag] = "".join(prop.itertext())
        found[href] = props
    return found
