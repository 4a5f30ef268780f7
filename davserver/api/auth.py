"""The sync API's authentication: HTTP Basic with a password or an app token,
through the same ``Authenticator`` (login cache, failure throttle) as WebDAV."""

from __future__ import annotations

import base64
import binascii

import falcon

from davserver.api.errors import ApiError
from davserver.auth import REALM, Authenticator, Throttled

CHALLENGE = {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}


class BasicAuth:
    """Falcon middleware: every request but the ``public`` paths needs a login;
    the user lands in ``req.context.user`` (and the environ, for the request log)."""

    def __init__(self, auth: Authenticator, public: frozenset[str]) -> None:
        self.auth = auth
        self.public = public

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path in self.public:
            return
        credentials = _credentials(req.get_header("Authorization"))
        if credentials is None:
            raise ApiError(401, "unauthorized", "log in with HTTP Basic", headers=CHALLENGE)
        name, secret = credentials
        try:
            user = self.auth.login(name, secret, req.remote_addr or "?")
        except Throttled as exc:
            raise ApiError(
                429,
                "too_many_requests",
                str(exc),
                headers={"Retry-After": str(exc.retry_after)},
            ) from None
        if user is None:
            raise ApiError(401, "unauthorized", "wrong user name or password", headers=CHALLENGE)
        req.context.user = user
        req.env["drivegate.user"] = user


def _credentials(header: str | None) -> tuple[str, str] | None:
    """(name, secret) from a Basic Authorization header, or None."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, colon, secret = decoded.partition(":")
    return (name, secret) if colon else None
