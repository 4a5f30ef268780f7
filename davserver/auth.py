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
import secrets
import threading
import time
from collections import deque
from typing import Any

from cachetools import TTLCache
from wsgidav.dav_error import DAVError
from wsgidav.dc.base_dc import BaseDomainController

from core import AuthError, Drive, UserInfo

REALM = "drivegate"
HTTP_TOO_MANY_REQUESTS = 429


class FailureThrottle:
    """Refuses a client address or a user name after ``limit`` failures within
    ``window`` seconds (in this process), until the window has passed.

    Bounded: only keys with a failure in the window are kept, at most ``max_keys``
    of them (past that, those whose last failure is oldest are forgotten first), and
    a key longer than any real name or address is kept as its hash.
    """

    def __init__(self, limit: int = 10, window: float = 60.0, max_keys: int = 20_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _count(self, key: str, now: float) -> int:
        """Failures of ``key`` within the window (forgetting older ones, and the key if
        none is left)."""
        stamps = self._failures.get(_short(key))
        if stamps is None:
            return 0
        while stamps and stamps[0] < now - self.window:
            stamps.popleft()
        if not stamps:
            del self._failures[_short(key)]
        return len(stamps)

    def blocked(self, *keys: str) -> bool:
        now = time.monotonic()
        with self._lock:
            return any(self._count(key, now) >= self.limit for key in keys)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._count(key, now)
                self._failures.setdefault(_short(key), deque()).append(now)
            if len(self._failures) > self.max_keys:
                self._prune(now)

    def tracked(self) -> int:
        """How many keys are remembered now."""
        with self._lock:
            return len(self._failures)

    def _prune(self, now: float) -> None:
        """Forget keys without failures in the window; if that is not enough, those
        whose last failure is oldest, down to three quarters of ``max_keys``."""
        for key in list(self._failures):
            self._count(key, now)
        excess = len(self._failures) - self.max_keys * 3 // 4
        if excess > 0:
            by_age = sorted(self._failures, key=lambda key: self._failures[key][-1])
            for key in by_age[:excess]:
                del self._failures[key]


MAX_KEY_CHARS = 128
"""Throttle keys longer than this (no user name or address is) are kept as a hash."""


def _short(key: str) -> str:
    if len(key) <= MAX_KEY_CHARS:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class LoginCache:
    """Remembers recent successful logins for ``ttl`` seconds.

    Basic auth sends the password with every request, and an argon2 check
    costs ~100 ms by design; a client listing a folder of thousands of files
    must not pay that per request. Keys are keyed HMACs of name and secret
    (a random per-process key), so the cache never holds a password.
    """

    def __init__(self, ttl: float = 120.0, size: int = 4096) -> None:
        self._key = secrets.token_bytes(32)
        self._cache: TTLCache[bytes, UserInfo] = TTLCache(maxsize=size, ttl=ttl)
        self._lock = threading.Lock()

    def _digest(self, name: str, secret: str) -> bytes:
        return hmac.new(self._key, f"{name}\0{secret}".encode(), hashlib.sha256).digest()

    def get(self, name: str, secret: str) -> UserInfo | None:
        with self._lock:
            return self._cache.get(self._digest(name, secret))

    def put(self, name: str, secret: str, user: UserInfo) -> None:
        with self._lock:
            self._cache[self._digest(name, secret)] = user


class Throttled(Exception):
    """Too many failed logins from this address or for this user name: try later."""


class Authenticator:
    """Checks Basic credentials: the login cache first, then the drive; failures count
    towards the throttle, and a throttled address or name is refused outright."""

    def __init__(self, drive: Drive, throttle: FailureThrottle | None = None) -> None:
        self.drive = drive
        self.throttle = throttle or FailureThrottle()
        self.logins = LoginCache()

    def login(self, name: str, secret: str, address: str) -> UserInfo | None:
        """The user, or None for wrong credentials; Throttled when refused outright."""
        keys = (f"ip:{address}", f"user:{name}")
        if self.throttle.blocked(*keys):
            raise Throttled("too many failed logins; try later")
        user = self.logins.get(name, secret)
        if user is None:
            try:
                user = self.drive.authenticate(name, secret)
            except AuthError:
                self.throttle.failed(*keys)
                return None
            self.logins.put(name, secret, user)
        return user


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
            # The directory browser's own CSS and icons are public.
            path = environ.get("PATH_INFO", "") if environ else ""
            return not path.startswith("/:dir_browser")

        def is_share_anonymous(self, share: str) -> bool:
            return share == "/:dir_browser"

        def supports_http_digest_auth(self) -> bool:
            return False

        def basic_auth_user(
            self, realm: str, user_name: str, password: str, environ: dict[str, Any]
        ) -> bool:
            try:
                user = auth.login(user_name, password, environ.get("REMOTE_ADDR", "?"))
            except Throttled as exc:
                raise DAVError(HTTP_TOO_MANY_REQUESTS, context_info=str(exc)) from None
            if user is None:
                return False
            environ["drivegate.user"] = user
            return True

    return DriveDomainController
