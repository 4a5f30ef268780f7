"""Users, passwords (argon2id) and app tokens (shown once, stored as SHA-256).

``authenticate`` accepts a user's password or any of their app tokens and
answers every failure with the same AuthError, spending an argon2 verify
even for an unknown user so timing does not reveal which names exist.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.orm import Session

from core import nodeids
from core.db.models import AppToken, Node, User
from core.errors import AuthError, Conflict, InvalidName, InvalidRequest, UserNotFound
from core.ids import NodeId, UserId
from core.records import Credential, UserInfo

_hasher = PasswordHasher()
_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
TOKEN_PREFIX = "dgt_"
MIN_PASSWORD = 8


def _info(user: User) -> UserInfo:
    assert user.root_id is not None
    return UserInfo(
        id=UserId(user.id),
        name=user.name,
        is_admin=user.is_admin,
        quota_bytes=user.quota_bytes,
        used_bytes=user.used_bytes,
        reserved_bytes=user.reserved_bytes,
        root_id=NodeId(user.root_id),
    )


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"a password needs at least {MIN_PASSWORD} characters")


def add_user(
    session: Session, name: str, password: str, *, is_admin: bool = False, quota: int | None = None
) -> UserInfo:
    if not _USER_NAME.match(name):
        raise InvalidName(f"invalid user name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-'")
    _check_password(password)
    if quota is not None and quota < 0:
        raise InvalidRequest("a quota cannot be negative")
    now = time.time()
    user = User(
        name=name,
        password_hash=_hasher.hash(password),
        is_admin=is_admin,
        quota_bytes=quota,
        used_bytes=0,
        reserved_bytes=0,
        journal_seq=0,
        created_at=now,
    )
    session.add(user)
    try:
        with session.begin_nested():
            session.flush()
    except SQLIntegrityError:
        raise Conflict(f"user {name!r} already exists") from None
    root = Node(
        id=nodeids.fresh_id(session),
        owner_id=user.id,
        parent_id=None,
        name="",
        is_folder=True,
        size=0,
        mtime_ns=time.time_ns(),
        created_at=now,
    )
    session.add(root)
    session.flush()
    user.root_id = root.id
    session.flush()
    return _info(user)


def get_user(session: Session, name: str) -> User:
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None:
        raise UserNotFound(f"no user named {name!r}")
    return user


def user_info(session: Session, user_id: int) -> UserInfo:
    user = session.get(User, user_id)
    if user is None:
        raise UserNotFound(f"no user with id {user_id}")
    return _info(user)


def list_users(session: Session) -> list[UserInfo]:
    return [_info(user) for user in session.execute(select(User).order_by(User.name)).scalars()]


def set_password(session: Session, name: str, password: str) -> None:
    _check_password(password)
    get_user(session, name).password_hash = _hasher.hash(password)


def set_quota(session: Session, name: str, quota: int | None) -> None:
    if quota is not None and quota < 0:
        raise InvalidRequest("a quota cannot be negative")
    get_user(session, name).quota_bytes = quota


def create_token(session: Session, user_name: str, token_name: str) -> str:
    """Create an app token and return it; only its hash is kept."""
    user = get_user(session, user_name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        AppToken(
            user_id=user.id, name=token_name, token_hash=_token_hash(token), created_at=time.time()
        )
    )
    return token


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def revoke_token(session: Session, user_name: str, token_name: str) -> int:
    """Delete the user's app tokens called ``token_name``; how many there were.
    A login with one of them fails from the next request on (``current_login``)."""
    user = get_user(session, user_name)
    removed = session.execute(
        delete(AppToken).where(AppToken.user_id == user.id, AppToken.name == token_name)
    )
    return int(removed.rowcount or 0)  # type: ignore[attr-defined]


LoginBookkeeping = Callable[[Session], None]
"""What a login leaves to write (the token's last use, a password rehash): run in
a write transaction of its own, after the answer, so a login never waits for a
write (another process may hold SQLite's write lock)."""


def authenticate(session: Session, name: str, secret: str) -> UserInfo:
    """The user whose password or app token ``secret`` is, or AuthError (the
    bookkeeping done in ``session``, which must be a write transaction)."""
    user, _, bookkeeping = login(session, name, secret)
    if bookkeeping is not None:
        bookkeeping(session)
    return user


def login(
    session: Session, name: str, secret: str
) -> tuple[UserInfo, Credential, LoginBookkeeping | None]:
    """The user whose password or app token ``secret`` is, the credential that
    matched (for ``current_login``) and the bookkeeping left to do; AuthError
    otherwise. Reads only."""
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None:
        _verify(_dummy_hash(), secret)
        raise AuthError("wrong user name or password")
    user_id = UserId(user.id)
    if secret.startswith(TOKEN_PREFIX):
        digest = _token_hash(secret)
        tokens = session.execute(select(AppToken).where(AppToken.user_id == user.id)).scalars()
        for token in tokens:
            if hmac.compare_digest(token.token_hash, digest):
                touch = functools.partial(_touch_token, token.id)
                return _info(user), Credential(user_id, token.id, None), touch
    if _verify(user.password_hash, secret):
        credential = Credential(user_id, None, _digest(user.password_hash))
        if not _hasher.check_needs_rehash(user.password_hash):
            return _info(user), credential, None
        rehash = functools.partial(_store_rehash, user_id, user.password_hash, _hasher.hash(secret))
        return _info(user), credential, rehash
    raise AuthError("wrong user name or password")


def _touch_token(token_id: int, session: Session) -> None:
    session.execute(
        update(AppToken).where(AppToken.id == token_id).values(last_used_at=time.time())
    )


def _store_rehash(user_id: int, old: str, new: str, session: Session) -> None:
    """The password's hash with today's parameters, unless it changed meanwhile."""
    session.execute(
        update(User).where(User.id == user_id, User.password_hash == old).values(password_hash=new)
    )


def current_login(session: Session, credential: Credential) -> UserInfo | None:
    """The user, fresh, if ``credential`` still stands: the user exists and the
    password has not changed since, or the app token still exists. Primary-key
    lookups only (this runs on every request a remembered login makes)."""
    user = session.get(User, credential.user_id)
    if user is None:
        return None
    if credential.token_id is not None:
        token = session.get(AppToken, credential.token_id)
        return _info(user) if token is not None and token.user_id == user.id else None
    if credential.password_digest != _digest(user.password_hash):
        return None
    return _info(user)


def _digest(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()


@functools.cache
def _dummy_hash() -> str:
    """A real hash to verify against for unknown users (same cost as a real check)."""
    return _hasher.hash("not the password of anyone")


def _verify(password_hash: str, secret: str) -> bool:
    try:
        return _hasher.verify(password_hash, secret)
    except (VerificationError, InvalidHashError):
        return False
