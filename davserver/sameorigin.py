"""Refusing cross-site requests that change state (CSRF), for both faces.

A browser attaches the credentials it has cached for this server (Basic
auth today, a session cookie with the web app) to requests any page makes,
so a hostile page could otherwise mkdir, move, delete or restore through the
user's browser. The rule, applied before authentication to every method but
GET, HEAD and OPTIONS: a request that carries an ``Origin`` header must come
from this server's own origin (its host and port as the request's ``Host``
names them) or from one listed in the ``allowed_origins`` setting; with no
``Origin``, a ``Sec-Fetch-Site`` other than ``same-origin`` or ``none`` is
refused too. Browsers send one or the other on every such request; sync
clients, the mount, rclone, davfs2 and file managers send neither and are
not affected. The sync API also takes JSON only as ``application/json``
(``davserver.api.wire``), which no cross-site form or simple request can send.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

Environ = dict[str, Any]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_SITE_FETCHES = frozenset({"same-origin", "none"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host_port(netloc: str, scheme: str) -> tuple[str, int] | None:
    """``netloc`` as (lower-case host, port), the scheme's port when none is given."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS.get(scheme, 0)


def _origin(value: str) -> tuple[str, str, int] | None:
    """An ``Origin`` header as (scheme, host, port); None if it is not one (``null``…)."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or parts.path not in ("", "/") or parts.query:
        return None
    found = _host_port(parts.netloc, scheme)
    return (scheme, *found) if found is not None else None


class SameOriginGuard:
    """403 for a state-changing request a browser sent from another site."""

    def __init__(self, app: Any, allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = {found for value in allowed_origins if (found := _origin(value))}

    def __call__(self, environ: Environ, start_response: Any) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") in SAFE_METHODS or self._same_site(environ):
            answer: Iterable[bytes] = self.app(environ, start_response)
            return answer
        body = (
            b"cross-site request refused: this server only accepts changes from its own "
            b"origin (or one in the allowed_origins setting)\n"
        )
        start_response(
            "403 Forbidden",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def _same_site(self, environ: Environ) -> bool:
        origin_header = environ.get("HTTP_ORIGIN")
        if origin_header is None:
            fetch_site = environ.get("HTTP_SEC_FETCH_SITE")
            return fetch_site is None or fetch_site.strip().lower() in SAME_SITE_FETCHES
        origin = _origin(origin_header)
        if origin is None:
            return False
        if origin in self.allowed:
            return True
        # The host the request was sent to, in the origin's scheme: a proxy that ends
        # TLS makes the request plain HTTP while the page's origin is https.
        own = _host_port(environ.get("HTTP_HOST", ""), origin[0])
        return own is not None and own == origin[1:]
