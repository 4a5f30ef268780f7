"""Per-user quota: reservations and charges as conditional UPDATEs.

There is no check-then-write anywhere: ``reserve`` adds to ``reserved_bytes``
only if used + reserved + n still fits, in one statement, so two concurrent
uploads can never both squeeze into the last free bytes.
"""

from __future__ import annotations

from typing import cast

from humanfriendly import format_size
from sqlalchemy import BigInteger, Table, bindparam, or_, select, update
from sqlalchemy.orm import Session

from core.db.models import User
from core.errors import QuotaExceeded

# Core statements, built once: a small file's write runs three of these, and
# building ORM updates (and their cache keys) each time cost ~1 ms apiece.
_USERS = cast(Table, User.__table__)
_MORE = bindparam("more", type_=BigInteger())  # bytes that must still fit
_FITS = or_(
    _USERS.c.quota_bytes.is_(None),
    _USERS.c.used_bytes + _USERS.c.reserved_bytes + _MORE <= _USERS.c.quota_bytes,
)
_RESERVE = (
    update(_USERS)
    .where(_USERS.c.id == bindparam("user_id"), _FITS)
    .values(reserved_bytes=_USERS.c.reserved_bytes + _MORE)
)
_RELEASE = (
    update(_USERS)
    .where(_USERS.c.id == bindparam("user_id"))
    .values(reserved_bytes=_USERS.c.reserved_bytes - bindparam("n", type_=BigInteger()))
)
_CHANGES = {
    "used_bytes": _USERS.c.used_bytes + bindparam("delta", type_=BigInteger()),
    "reserved_bytes": _USERS.c.reserved_bytes - bindparam("released", type_=BigInteger()),
}
_CHARGE = update(_USERS).where(_USERS.c.id == bindparam("user_id")).values(_CHANGES)
_CHARGE_IF_FITS = update(_USERS).where(_USERS.c.id == bindparam("user_id"), _FITS).values(_CHANGES)


def reserve(session: Session, user_id: int, nbytes: int) -> None:
    """Hold ``nbytes`` of the user's quota, or raise QuotaExceeded."""
    if nbytes <= 0:
        return
    result = session.execute(_RESERVE, {"user_id": user_id, "more": nbytes})
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise QuotaExceeded(f"quota exceeded: {format_size(nbytes, binary=True)} more do not fit")


def require_room(session: Session, user_id: int, nbytes: int) -> None:
    """QuotaExceeded unless ``nbytes`` more fit now: an early refusal, before work
    that is wasted if they do not (``reserve`` or ``charge`` still decide)."""
    if nbytes <= 0:
        return
    fits = session.execute(
        select(_FITS).select_from(_USERS).where(_USERS.c.id == user_id), {"more": nbytes}
    ).scalar_one_or_none()
    if not fits:
        raise QuotaExceeded(f"quota exceeded: {format_size(nbytes, binary=True)} more do not fit")


def release(session: Session, user_id: int, nbytes: int) -> None:
    """Give back a reservation (upload failed or was committed)."""
    if nbytes:
        session.execute(_RELEASE, {"user_id": user_id, "n": nbytes})


def charge(session: Session, user_id: int, delta: int, *, released: int = 0) -> None:
    """Add ``delta`` (may be negative) to used bytes and drop ``released`` reserved bytes.

    A positive ``delta`` beyond what was reserved must still fit in the quota.
    """
    unreserved = delta - released
    params = {"user_id": user_id, "delta": delta, "released": released}
    if unreserved > 0:
        result = session.execute(_CHARGE_IF_FITS, {**params, "more": unreserved})
    else:
        result = session.execute(_CHARGE, params)
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise QuotaExceeded(
            f"quota exceeded: {format_size(unreserved, binary=True)} more do not fit"
        )
