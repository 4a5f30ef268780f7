"""Request bodies the WebDAV tests send."""

from __future__ import annotations


def exclusive_lock(owner: str | None = None) -> str:
    """A LOCK body for an exclusive write lock, with an optional raw owner element body."""
    owner_element = f"<D:owner>{owner}</D:owner>" if owner is not None else ""
    return (
        '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
        f"</D:lockscope><D:locktype><D:write/></D:locktype>{owner_element}</D:lockinfo>"
    )
