"""Which old versions a retention policy keeps: a pure function, easy to test.

Default policy: every version of the last 30 days; then the newest version
of each day up to a year; then the newest of each week; never more than
``max_versions``; the current version always.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.settings import RetentionPolicy

DAY = 86400.0


def versions_to_drop(
    created: Sequence[tuple[int, float]],
    current_id: int | None,
    now: float,
    policy: RetentionPolicy,
) -> list[int]:
    """Ids to delete among ``created`` = [(version id, created_at), …]."""
    newest_first = sorted(created, key=lambda item: item[1], reverse=True)
    kept: list[int] = []
    buckets: set[tuple[str, int]] = set()
    for version_id, created_at in newest_first:
        age = now - created_at
        if age <= policy.keep_daily_days * DAY:
            bucket: tuple[str, int] | None = ("day", int(created_at // DAY))
        elif policy.keep_weekly:
            bucket = ("week", int(created_at // (7 * DAY)))
        else:
            bucket = None
        if version_id == current_id or age <= policy.keep_all_days * DAY:
            keep = True
        else:
            keep = bucket is not None and bucket not in buckets
        if keep:
            kept.append(version_id)
            if bucket is not None:
                buckets.add(bucket)  # the newest kept version stands for its day/week
    keep_set = set(kept[: policy.max_versions])
    if current_id is not None:
        keep_set.add(current_id)
    return [version_id for version_id, _ in newest_first if version_id not in keep_set]
