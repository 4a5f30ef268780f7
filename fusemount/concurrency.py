"""Concurrency helpers for trio: run jobs in parallel as if they ran alone
(``gather``) and pick the exception that callers catch out of a nursery's
group (``leading``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import trio

from fusemount.errors import MountError

T = TypeVar("T")


async def gather(jobs: list[Callable[[], Awaitable[T]]], limit: int | None = None) -> list[T]:
    """Run the jobs in parallel (at most ``limit`` at a time, if given); the first
    MountError (if any) is raised as itself, and the other jobs are cancelled."""
    if len(jobs) == 1:
        return [await jobs[0]()]
    results: list[T | None] = [None] * len(jobs)
    limiter = trio.CapacityLimiter(limit or max(len(jobs), 1))

    async def run(index: int) -> None:
        async with limiter:
            results[index] = await jobs[index]()

    try:
        async with trio.open_nursery() as nursery:
            for index in range(len(jobs)):
                nursery.start_soon(run, index)
    except BaseExceptionGroup as group:
        first = leading(group, MountError)
        if first is None:
            raise
        raise first from None
    return cast("list[T]", results)


def leading(group: BaseExceptionGroup[Any], *kinds: type[BaseException]) -> BaseException | None:
    """The first exception of one of ``kinds`` in a nursery's group (depth first), if any:
    what the callers of concurrent work catch, as if the work had run alone."""
    matched = group.subgroup(kinds)
    if matched is None:
        return None
    first: BaseException = matched
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first
