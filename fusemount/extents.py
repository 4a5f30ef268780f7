"""Byte ranges of a file: a sorted list of disjoint, non-adjacent half-open
``[start, end)`` intervals. A working copy uses one to remember which of its
bytes it holds itself (written, or zeros past an earlier end); the rest is
still the content of the version the edit started from (see ``workcopy``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

Range = tuple[int, int]


class Extents:
    """A set of byte offsets kept as merged ranges."""

    def __init__(self, ranges: list[Range] | None = None) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in ranges or []:
            self.add(start, end)

    def __iter__(self) -> Iterator[Range]:
        return zip(self._starts, self._ends, strict=True)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Extents) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Extents({list(self)!r})"

    def add(self, start: int, end: int) -> None:
        """Include ``[start, end)``, merging with the ranges it touches."""
        if end <= start:
            return
        first = bisect.bisect_left(self._ends, start)  # first range ending at/after start
        last = bisect.bisect_right(self._starts, end)  # ranges starting at/before end
        if first < last:
            start = min(start, self._starts[first])
            end = max(end, self._ends[last - 1])
        self._starts[first:last] = [start]
        self._ends[first:last] = [end]

    def clip(self, size: int) -> None:
        """Drop everything at or after ``size``."""
        keep = bisect.bisect_left(self._starts, size)
        del self._starts[keep:], self._ends[keep:]
        if self._ends and self._ends[-1] > size:
            self._ends[-1] = size

    def split(self, start: int, end: int) -> Iterator[tuple[int, int, bool]]:
        """``[start, end)`` cut into consecutive pieces ``(start, end, inside)``."""
        index = bisect.bisect_right(self._ends, start)
        position = start
        while position < end:
            if index < len(self._starts) and self._starts[index] <= position:
                stop = min(end, self._ends[index])
                yield position, stop, True
                index += 1
            else:
                stop = min(end, self._starts[index]) if index < len(self._starts) else end
                yield position, stop, False
            position = stop

    def covers(self, start: int, end: int) -> bool:
        """Whether every offset of ``[start, end)`` is included."""
        return all(inside for _, _, inside in self.split(start, end))

    def touches(self, start: int, end: int) -> bool:
        """Whether any offset of ``[start, end)`` is included."""
        return any(inside for _, _, inside in self.split(start, end))

    def to_json(self) -> list[list[int]]:
        return [[start, end] for start, end in self]

    @classmethod
    def from_json(cls, value: object) -> Extents:
        if not isinstance(value, list):
            raise ValueError("extents must be a list of [start, end] pairs")
        ranges: list[Range] = []
        for item in value:
            if (
                not isinstance(item, list) or len(item) != 2
                or not all(isinstance(x, int) for x in item) or not 0 <= item[0] <= item[1]
            ):  # fmt: skip
                raise ValueError(f"not a [start, end] pair: {item!r}")
            ranges.append((item[0], item[1]))
        return cls(ranges)
