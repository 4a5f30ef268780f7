"""HTTP Basic authentication against drivegate users (password or app token),
with throttling of repeated failures, shared by the WebDAV face and the sync
API (one ``Authenticator`` per process: one login cache, one throttle).

Digest is off: passwords are stored as argon2 hashes, which Digest cannot
use. Unauthenticated requests get 401 with ``WWW-Authenticate: Basic`` (never
a redirect or an HTML login page: Windows and KDE clients need that).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache
from wsgidav.dav_error import DAVError
from wsgidav.dc.base_dc import BaseDomainController

from core import AuthError, Credential, Drive, UserInfo
from davserver.dav import browser

REALM = "drivegate"
ASSET_SHARE = "/:dir_browser"
HTTP_TOO_MANY_REQUESTS = 429
RETRY_AFTER_KEY = "drivegate.retry_after"


@dataclass
class _Failures:
    count: int = 0
    barred_until: float = 0.0


MAX_KEY_CHARS = 128
"""User names longer than this (no real one is) are kept in the throttle as a hash."""


def _short(name: str) -> str:
    if len(name) <= MAX_KEY_CHARS:
        return name
    return "sha256:" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()


class FailureThrottle:
    """Failed logins, per (user name, client address) pair and in this process.

    The first ``free`` failures of a pair cost nothing; each one after that
    (a try while barred included) bars the pair for ``base * 2**k`` seconds
    (k = 0, 1, 2 …, at most ``ceiling``), right password or not. A success, or
    ``2 * ceiling`` seconds without a failure, forgets the pair. Keyed per pair,
    so a stranger's failures never bar the user from another address (their own
    devices keep working), and one address's failures never bar other users
    behind the same proxy. At most
    ``size`` pairs are remembered (the least recently failed are forgotten first).
    """

    def __init__(
        self, free: int = 5, base: float = 1.0, ceiling: float = 900.0, size: int = 100_000
    ) -> None:
        self.free = free
        self.base = base
        self.ceiling = ceiling
        self._pairs: TTLCache[tuple[str, str], _Failures] = TTLCache(size, ttl=2 * ceiling)
        self._lock = threading.Lock()

    def wait(self, name: str, address: str) -> float:
        """Seconds before ``name`` may try again from ``address`` (0: now)."""
        with self._lock:
            failures = self._pairs.get((_short(name), address))
        if failures is None:
            return 0.0
        return max(0.0, failures.barred_until - time.monotonic())

    def failed(self, name: str, address: str) -> None:
        with self._lock:
            failures = self._pairs.get((_short(name), address)) or _Failures()
            failures.count += 1
            beyond = failures.count - self.free
            if beyond > 0:
                delay = min(self.ceiling, self.base * 2.0 ** min(beyond - 1, 32))
                failures.barred_until = time.monotonic() + delay
            self._pairs[(_short(name), address)] = failures  # (re)starts its time to live

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            self._pairs.pop((_short(name), address), None)


class LoginCache:
    """Remembers recent successful logins for ``ttl`` seconds.

    Basic auth sends the password with every request, and an argon2 check
    is slow by design; a client listing a folder of thousands of files
    must not pay that per request. Keys are keyed HMACs of name and secret
    (a random per-process key), so the cache never holds a password. What is
    remembered is the credential, re-checked on every use (``Drive.current_login``).
    """

    def __init__(self, ttl: float = 120.0, size: int = 4096) -> None:
        self._key = secrets.token_bytes(32)
        self._cache: TTLCache[bytes, Credential] = TTLCache(maxsize=size, ttl=ttl)
        self._lock = threading.Lock()

    def _digest(self, name: str, secret: str) -> bytes:
        return hmac.new(self._key, f"{name}\0{secret}".encode(), hashlib.sha256).digest()

    def get(self, name: str, secret: str) -> Credential | None:
        with self._lock:
            return self._cache.get(self._digest(name, secret))

    def put(self, name: str, secret: str, credential: Credential) -> None:
        with self._lock:
            self._cache[self._digest(name, secret)] = credential

    def drop(self, name: str, secret: str) -> None:
        with self._lock:
            self._cache.pop(self._digest(name, secret), None)


class Throttled(Exception):
    """Too many failed logins for this user name from this address: try later."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"too many failed logins; try again in {self.retry_after} s")


class Authenticator:
    """Checks Basic credentials: the throttle first, then the login cache (whose
    credential is re-checked against the database on each use, so a changed
    password or a revoked token stops working at once, in every process), then
    the drive's argon2 check. Failures count towards the throttle."""

    def __init__(self, drive: Drive, throttle: FailureThrottle | None = None) -> None:
        self.drive = drive
        self.throttle = throttle or FailureThrottle()
        self.logins = LoginCache()

    def login(self, name: str, secret: str, address: str) -> UserInfo | None:
        """The user, or None for wrong credentials; Throttled when refused outright."""
        wait = self.throttle.wait(name, address)
        if wait > 0:
            # A try while barred counts too: the pair is the guesser's own, so only
            # the guesser waits longer.
            self.throttle.failed(name, address)
            raise Throttled(self.throttle.wait(name, address))
        credential = self.logins.get(name, secret)
        if credential is not None:
            user = self.drive.current_login(credential)
            if user is not None:
                return user
            self.logins.drop(name, secret)
        try:
            user, credential = self.drive.login(name, secret)
        except AuthError:
            self.throttle.failed(name, address)
            return None
        self.throttle.succeeded(name, address)
        self.logins.put(name, secret, credential)
        return user


class RetryAfter:
    """Adds ``Retry-After`` to a 429 that a throttled WebDAV login left (WsgiDAV's
    error answers carry no headers of their own)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        def answer(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            retry_after = environ.get(RETRY_AFTER_KEY)
            if status.startswith("429") and retry_after is not None:
                headers = [*headers, ("Retry-After", str(retry_after))]
            return start_response(status, headers, *rest)

        return self.app(environ, answer)


def _public_assets() -> frozenset[str]:
    """The folder page's own style sheet and logo: the only anonymous paths."""
    return frozenset(
        f"{ASSET_SHARE}/{asset.name}"
        for asset in browser.HTDOCS.iterdir()
        if asset.suffix in {".css", ".svg"}  # not the page template, not Python
    )


PUBLIC_ASSETS = _public_assets()


def is_public_asset(method: str, path: str) -> bool:
    """Whether a request may go without a login: a GET or HEAD of exactly one of the
    directory browser's assets (any other path under the share, or beside it, logs in)."""
    return method in {"GET", "HEAD"} and path in PUBLIC_ASSETS


def domain_controller_for(auth: Authenticator) -> type[BaseDomainController]:
    """A WsgiDAV domain controller class bound to ``auth`` (WsgiDAV builds it itself)."""

    class DriveDomainController(BaseDomainController):
        def __init__(self, wsgidav_app: Any, config: dict[str, Any]) -> None:
            super().__init__(wsgidav_app, config)

        def __str__(self) -> str:
            return "DriveDomainController"

        def get_domain_realm(self, path_info: str, environ: dict[str, Any]) -> str:
            return REALM

        def require_authentication(self, realm: str, environ: dict[str, Any] | None) -> bool:
            if environ is None:
                return True
            # WsgiDAV has moved the share's name into SCRIPT_NAME by now.
            path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
            return not is_public_asset(environ.get("REQUEST_METHOD", ""), path)

        def is_share_anonymous(self, share: str) -> bool:
            return share == ASSET_SHARE

        def supports_http_digest_auth(self) -> bool:
            return False

        def basic_auth_user(
            self, realm: str, user_name: str, password: str, environ: dict[str, Any]
        ) -> bool:
            try:
                user = auth.login(user_name, password, environ.get("REMOTE_ADDR", "?"))
            except Throttled as exc:
                environ[RETRY_AFTER_KEY] = exc.retry_after
                raise DAVError(HTTP_TOO_MANY_REQUESTS, context_info=str(exc)) from None
            if user is None:
                return False
            environ["drivegate.user"] = user
            return True

    return DriveDomainController
