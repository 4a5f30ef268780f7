"""The ``Range`` header of a GET (RFC 9110 §14.1, §14.2), as pure functions.

``parse_ranges`` reads the header's syntax; ``resolve`` applies it to a
representation's length: the satisfiable ranges as byte spans, overlapping or
adjacent ones coalesced (§14.6 allows it), in the order the client asked for
them. A header that is not a valid ``bytes`` range set, or that asks for more
than ``MAX_RANGES`` ranges (range amplification), is ignored: the whole
representation is the answer.
"""

from __future__ import annotations

import re
from typing import NamedTuple

MAX_RANGES = 16
"""More range-specs than this in one header: answer the whole file (200)."""
MAX_HEADER = 2048

_SPEC = re.compile(r"(\d*)-(\d*)")


class RangeSpec(NamedTuple):
    """One range-spec: ``first-last`` (``last`` None: to the end) or, when ``first``
    is None, the last ``last`` bytes (a suffix range)."""

    first: int | None
    last: int | None


class Span(NamedTuple):
    """A satisfiable range: bytes ``start`` to ``end`` inclusive."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_ranges(header: str) -> list[RangeSpec] | None:
    """The range-specs of a ``Range`` header, or None when it is to be ignored:
    another unit, invalid syntax (``bytes=5-2``, ``bytes=x``, an empty set), or
    more than ``MAX_RANGES`` specs."""
    if len(header) > MAX_HEADER:
        return None
    unit, equals, range_set = header.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    specs: list[RangeSpec] = []
    for raw in range_set.split(","):
        item = raw.strip(" \t")
        if not item:
            continue  # the list syntax allows empty elements
        match = _SPEC.fullmatch(item)
        if match is None or len(specs) == MAX_RANGES:
            return None
        first, last = match.groups()
        if not first and not last:
            return None
        if not first:
            specs.append(RangeSpec(None, int(last)))
        elif not last:
            specs.append(RangeSpec(int(first), None))
        elif int(last) < int(first):
            return None
        else:
            specs.append(RangeSpec(int(first), int(last)))
    return specs or None


def _span(spec: RangeSpec, size: int) -> Span | None:
    """``spec`` applied to a representation of ``size`` bytes; None: unsatisfiable."""
    if spec.first is None:
        assert spec.last is not None
        if spec.last == 0:
            return None
        return Span(max(0, size - spec.last), size - 1)
    if spec.first >= size:
        return None
    last = size - 1 if spec.last is None else min(spec.last, size - 1)
    return Span(spec.first, last)


def resolve(specs: list[RangeSpec], size: int) -> list[Span]:
    """The satisfiable spans of ``specs`` for ``size`` bytes (``size`` > 0), those
    that overlap or touch merged, ordered by the first spec each one holds. Empty:
    nothing is satisfiable (416)."""
    spans = [(span, order) for order, spec in enumerate(specs) if (span := _span(spec, size))]
    merged: list[tuple[Span, int]] = []
    for span, order in sorted(spans):
        if merged and span.start <= merged[-1][0].end + 1:
            previous, first_order = merged[-1]
            merged[-1] = (
                Span(previous.start, max(previous.end, span.end)),
                min(first_order, order),
            )
        else:
            merged.append((span, order))
    return [span for span, _ in sorted(merged, key=lambda pair: pair[1])]
