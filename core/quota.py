"""Per-user quota: reservations and charges as conditional UPDATEs.

There is no check-then-write anywhere: ``reserve`` adds to ``reserved_bytes``
only if used + reserved + n still fits, in one statement, so two concurrent
uploads can never both squeeze into the last free bytes.

Reservations are held by upload sessions (``UploadSession``), which beat
every ``core.commit.HEARTBEAT_SECONDS`` while bytes arrive. A session whose
process died (kill -9, power loss) never releases its bytes; gc frees them
after the upload timeout, but the user would meanwhile be refused writes for
quota they do not use. So when a reservation or charge does not fit, the
user's sessions silent for ``STALE_SECONDS`` are ended, their bytes released,
and it is tried once more. A session that was only slow finds itself ended
at its next step (``IncompleteUpload``), which releases nothing twice.
"""

from __future__ import annotations

import time
from typing import cast

from humanfriendly import format_size
from sqlalchemy import BigInteger, Table, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from core.db.models import UploadSession, User
from core.errors import QuotaExceeded

# Core statements, built once: a small file's write runs three of these, and
# building ORM updates (and their cache keys) each time was a cost on every write.
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


STALE_SECONDS = 60.0
"""An upload session silent this long is dead (it beats every 10 s while bytes
arrive, and the server drops a connection that sends nothing for 10 s)."""


def reserve(session: Session, user_id: int, nbytes: int, *, reclaim: bool = True) -> None:
    """Hold ``nbytes`` of the user's quota, or raise QuotaExceeded (after ending the
    user's dead upload sessions, unless ``reclaim`` is False)."""
    if nbytes <= 0:
        return
    params = {"user_id": user_id, "more": nbytes}
    if session.execute(_RESERVE, params).rowcount == 0:  # type: ignore[attr-defined]
        if not (reclaim and reclaim_stale(session, user_id)):
            raise QuotaExceeded(
                f"quota exceeded: {format_size(nbytes, binary=True)} more do not fit"
            )
        if session.execute(_RESERVE, params).rowcount == 0:  # type: ignore[attr-defined]
            raise QuotaExceeded(
                f"quota exceeded: {format_size(nbytes, binary=True)} more do not fit"
            )


def reclaim_stale(session: Session, user_id: int, now: float | None = None) -> int:
    """End the user's upload sessions silent for ``STALE_SECONDS`` and release what
    they held; return how many bytes that freed."""
    now = time.time() if now is None else now
    freed = sum(
        session.execute(
            delete(UploadSession)
            .where(
                UploadSession.user_id == user_id,
                UploadSession.heartbeat_at < now - STALE_SECONDS,
            )
            .returning(UploadSession.reserved_bytes)
        ).scalars()
    )
    release(session, user_id, freed)
    return freed


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
    if unreserved <= 0:
        result = session.execute(_CHARGE, params)
    else:
        result = session.execute(_CHARGE_IF_FITS, {**params, "more": unreserved})
        if result.rowcount == 0 and reclaim_stale(session, user_id):  # type: ignore[attr-defined]
            result = session.execute(_CHARGE_IF_FITS, {**params, "more": unreserved})
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise QuotaExceeded(
            f"quota exceeded: {format_size(unreserved, binary=True)} more do not fit"
        )
