"""Per-user quota: reservations and charges as conditional UPDATEs.

There is no check-then-write anywhere: ``reserve`` adds to ``reserved_bytes``
only if used + reserved + n still fits, in one statement, so two concurrent
uploads can never both squeeze into the last free bytes.
"""

from __future__ import annotations

from humanfriendly import format_size
from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from core.db.models import User
from core.errors import QuotaExceeded


def reserve(session: Session, user_id: int, nbytes: int) -> None:
    """Hold ``nbytes`` of the user's quota, or raise QuotaExceeded."""
    if nbytes <= 0:
        return
    result = session.execute(
        update(User)
        .where(
            User.id == user_id,
            or_(
                User.quota_bytes.is_(None),
                User.used_bytes + User.reserved_bytes + nbytes <= User.quota_bytes,
            ),
        )
        .values(reserved_bytes=User.reserved_bytes + nbytes)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise QuotaExceeded(f"quota exceeded: {format_size(nbytes, binary=True)} more do not fit")


def release(session: Session, user_id: int, nbytes: int) -> None:
    """Give back a reservation (upload failed or was committed)."""
    if nbytes:
        session.execute(
            update(User)
            .where(User.id == user_id)
            .values(reserved_bytes=User.reserved_bytes - nbytes)
        )


def charge(session: Session, user_id: int, delta: int, *, released: int = 0) -> None:
    """Add ``delta`` (may be negative) to used bytes and drop ``released`` reserved bytes.

    A positive ``delta`` beyond what was reserved must still fit in the quota.
    """
    unreserved = delta - released
    conditions = [User.id == user_id]
    if unreserved > 0:
        conditions.append(
            or_(
                User.quota_bytes.is_(None),
                User.used_bytes + User.reserved_bytes + unreserved <= User.quota_bytes,
            )
        )
    result = session.execute(
        update(User)
        .where(*conditions)
        .values(
            used_bytes=User.used_bytes + delta,
            reserved_bytes=User.reserved_bytes - released,
        )
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise QuotaExceeded(
            f"quota exceeded: {format_size(unreserved, binary=True)} more do not fit"
        )
