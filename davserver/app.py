"""Assembling the WSGI application: client address (``proxied``) → request log →
legacy aliases (``urlspace``) → honest error lengths → path limits → health check →
cross-site guard (``sameorigin``) → the sync API under ``/.drivegate/api/v1``
(Falcon) or else Retry-After on 429 → X-OC-MTime answer → a ``Destination``
naming this server made plain (``destination``) → WsgiDAV (Basic auth, locks,
properties) over ``DriveProvider``. Both faces share one ``Authenticator``
(login cache and failure throttle)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from wsgidav.wsgidav_app import WsgiDAVApp

from core import Drive, DriveError
from davserver.api import PREFIX, build_api
from davserver.auth import Authenticator, RetryAfter, domain_controller_for
from davserver.dav import browser
from davserver.dav.destination import DestinationHost
from davserver.dav.locks import SqlLockManager, SqlLockStorage
from davserver.dav.provider import DriveProvider
from davserver.dav.resources import parse_mtime
from davserver.errorbodies import HonestErrors
from davserver.pathlimits import PathLimits
from davserver.proxied import ClientAddress
from davserver.sameorigin import SameOriginGuard
from davserver.urlspace import HEALTH, LegacyAliases, under

log = logging.getLogger(__name__)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]

# GET and PUT move data in blocks of the largest chunk, so a GET sends each chunk
# whole and uncopied (WsgiDAV's default 8 KiB blocks are much slower).
BLOCK_SIZE = 4 * 1024 * 1024
MTIME_METHODS = frozenset({"PUT", "MKCOL", "COPY", "MOVE"})


def dav_config(auth: Authenticator, provider: DriveProvider) -> dict[str, Any]:
    return {
        "provider_mapping": {"/": provider},
        "http_authenticator": {
            "domain_controller": domain_controller_for(auth),
            "accept_basic": True,
            "accept_digest": False,
            "default_to_digest": False,
        },
        "lock_storage": None,  # set below: WsgiDAV cannot be told which manager to build
        "property_manager": None,  # dead properties live in SQL, by node (resources.py)
        "block_size": BLOCK_SIZE,
        "hotfixes": {"emulate_win32_lastmod": True},
        "mutable_live_props": ["{DAV:}getlastmodified", "{DAV:}lastmodified"],
        "add_header_MS_Author_Via": True,
        "verbose": 1,
        "logging": {"enable": False},
        "dir_browser": {
            "enable": True,
            "htdocs_path": str(browser.HTDOCS),
            "davmount": True,
            "ms_sharepoint_support": False,
            "libre_office_support": False,
        },
    }


def build_app(
    drive: Drive, *, long_polls: int = 8, trusted_proxies: tuple[str, ...] = ()
) -> WsgiApp:
    """The whole server; ``long_polls``: how many change-feed requests may be held
    at once (each holds a worker thread); ``trusted_proxies``: the addresses whose
    ``X-Forwarded-For`` is believed (``davserver.proxied``)."""
    auth = Authenticator(drive)
    provider = DriveProvider(drive)
    dav = WsgiDAVApp(dav_config(auth, provider))
    storage = SqlLockStorage(drive.locks, drive.backend.settings.lock_timeout_seconds)
    dav.lock_manager = SqlLockManager(storage)
    provider.set_lock_manager(dav.lock_manager)
    api = build_api(drive, auth, long_polls)
    guarded = SameOriginGuard(
        PathDispatch(PREFIX, api, RetryAfter(OcMtimeAnswer(DestinationHost(dav)))),
        drive.backend.settings.allowed_origins,
    )
    return ClientAddress(
        RequestLog(
            LegacyAliases(HonestErrors(PathLimits(HealthCheck(guarded, drive), PREFIX))),
            drive.db.statements_in_thread,
            drive.deferred_wakes,
        ),
        trusted_proxies,
    )


class PathDispatch:
    """Requests for ``prefix`` and below go to ``inner``, the rest to ``outer``."""

    def __init__(self, prefix: str, inner: WsgiApp, outer: WsgiApp) -> None:
        self.prefix = prefix
        self.inner = inner
        self.outer = outer

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if under(environ.get("PATH_INFO", ""), self.prefix):
            return self.inner(environ, start_response)
        return self.outer(environ, start_response)


class HealthCheck:
    """``GET /.drivegate/healthz`` (alias ``/healthz``): 200 when the database could
    take a write now, 503 otherwise (no auth); 405 for any other method."""

    def __init__(self, app: WsgiApp, drive: Drive) -> None:
        self.app = app
        self.drive = drive

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != HEALTH:
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD")
        headers = [("Content-Type", "text/plain")]
        if method not in {"GET", "HEAD"}:
            status, body = "405 Method Not Allowed", b"the health check answers GET and HEAD\n"
            headers.append(("Allow", "GET, HEAD"))
        else:
            try:
                self.drive.check_health()
                status, body = "200 OK", b"ok\n"
            except DriveError as error:
                status, body = "503 Service Unavailable", f"unavailable: {error}\n".encode()
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [] if method == "HEAD" else [body]


class OcMtimeAnswer:
    """Answer ``X-OC-MTime: accepted`` when a write that carried ``X-OC-Mtime`` succeeded
    (the Nextcloud/ownCloud convention rclone and desktop clients look for), and 400
    before any work when the header is not a time a node can hold."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in MTIME_METHODS or "HTTP_X_OC_MTIME" not in environ:
            return self.app(environ, start_response)
        try:
            parse_mtime(environ["HTTP_X_OC_MTIME"])
        except ValueError as error:
            body = f"Bad Request: bad X-OC-Mtime header: {error}\n".encode()
            headers = [("Content-Type", "text/plain; charset=utf-8"),
                       ("Content-Length", str(len(body)))]  # fmt: skip
            start_response("400 Bad Request", headers)
            return [body]

        def answer(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            if status.startswith("2"):
                headers = [*headers, ("X-OC-MTime", "accepted")]
            return start_response(status, headers, *rest)

        return self.app(environ, answer)


class CountingInput:
    """``wsgi.input`` that counts the body bytes read (for the request log)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.count = 0

    def read(self, *size: int | None) -> bytes:
        data: bytes = self.stream.read(*size)
        self.count += len(data)
        return data

    def readline(self, *size: int | None) -> bytes:
        data: bytes = self.stream.readline(*size)
        self.count += len(data)
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


class RequestLog:
    """One log line per request: method, path, status, bytes sent, duration, user, the
    number of SQL statements it cost (``sql=N``) and the body bytes read (``in=N``).
    The long-polls a request's commits wake are woken once it has sent its answer
    (``hold_wakes``, see ``core.changefeed``)."""

    def __init__(
        self,
        app: WsgiApp,
        statements: Callable[[], int],
        hold_wakes: Callable[[], contextlib.AbstractContextManager[None]],
    ) -> None:
        self.app = app
        self.statements = statements
        self.hold_wakes = hold_wakes

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        started = time.monotonic()
        statements_before = self.statements()
        seen: dict[str, str] = {}

        def remember(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            seen["status"] = status.split(" ", 1)[0]
            return start_response(status, headers, *rest)

        sent = 0
        received = environ["wsgi.input"] = CountingInput(environ["wsgi.input"])
        try:
            # The generator runs on the request's worker thread from start to end, so
            # the hold spans the whole request, its answer included.
            with self.hold_wakes():
                body = self.app(environ, remember)
                try:
                    for block in body:
                        sent += len(block)
                        yield block
                finally:
                    close = getattr(body, "close", None)
                    if close is not None:
                        close()
        finally:
            user = environ.get("drivegate.user")
            log.info(
                "%s %s %s %d %.3fs %s sql=%d in=%d",
                environ.get("REQUEST_METHOD"),
                environ.get("PATH_INFO"),
                seen.get("status", "-"),
                sent,
                time.monotonic() - started,
                user.name if user is not None else "-",
                self.statements() - statements_before,
                received.count,
            )
