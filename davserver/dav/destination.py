"""A COPY/MOVE ``Destination`` that names this server, made plain for WebDAV.

WsgiDAV accepts a ``Destination`` only when its ``host[:port]`` equals the
request's ``Host`` header as a string, so a URL with user info (KDE's KIO,
Dolphin and ``kioclient`` send ``http://alice:pw@host:port/…``) or with the
scheme's default port spelled out (``http://host:80/…`` for ``Host: host``)
was refused with 502 "Source and destination must have the same host name".
``DestinationHost`` compares scheme, host and port only (user info ignored,
a missing port is the scheme's default) against the request's own, as
WsgiDAV does (``Host`` or ``X-Forwarded-Host``, the request's scheme or
``X-Forwarded-Proto``), and when they match rewrites the header with the
request's own host and without the user info. Any other ``Destination`` is
left as it came, so WsgiDAV still refuses another host or port with 502.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import SplitResult, urlsplit

Environ = dict[str, Any]
WsgiApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]
DEFAULT_PORTS = {"http": 80, "https": 443}


def _host_port(hostname: str | None, port: int | None, scheme: str) -> tuple[str, int] | None:
    if not hostname:
        return None
    return hostname.lower(), port if port is not None else DEFAULT_PORTS.get(scheme, 0)


def _origin(netloc: str, scheme: str) -> tuple[str, int] | None:
    """A ``Host`` header value as (lower-case host, port) in ``scheme``; None if bad."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        return _host_port(parts.hostname, parts.port, scheme)
    except ValueError:
        return None


def own_destination(environ: Environ) -> str | None:
    """The request's ``Destination`` rewritten to name the request's own host without
    user info, when it names this server (see the module docstring); None when it
    does not, is not an absolute http(s) URL, or cannot be parsed."""
    destination: str | None = environ.get("HTTP_DESTINATION")
    if not destination:
        return None
    try:
        # As WsgiDAV reads it: a '#' belongs to the path (litmus sends one).
        parts = urlsplit(destination.strip(), allow_fragments=False)
        wanted = _host_port(parts.hostname, parts.port, parts.scheme.lower())
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    schemes = {environ.get("wsgi.url_scheme", "http").lower(),
               environ.get("HTTP_X_FORWARDED_PROTO", "").lower()}  # fmt: skip
    if wanted is None or scheme not in DEFAULT_PORTS or scheme not in schemes:
        return None
    for header in ("HTTP_HOST", "HTTP_X_FORWARDED_HOST"):
        host: str = environ.get(header, "").strip()
        if host and _origin(host, scheme) == wanted:
            return SplitResult(scheme, host.lower(), parts.path, parts.query, "").geturl()
    return None


class DestinationHost:
    """WSGI middleware: a COPY/MOVE whose ``Destination`` names this server reaches
    ``app`` with that header in the form WsgiDAV accepts (``own_destination``)."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") in ("COPY", "MOVE"):
            rewritten = own_destination(environ)
            if rewritten is not None:
                environ["HTTP_DESTINATION"] = rewritten
        return self.app(environ, start_response)
