"""The byte-size option of every ``drivegate`` command (quotas, cache sizes)."""

from __future__ import annotations

from typing import Any

import click
from humanfriendly import InvalidSize, parse_size


class SizeParam(click.ParamType):  # type: ignore[type-arg]
    """A byte size such as ``500M``, ``10GiB`` or ``none`` (no limit); K/M/G are binary."""

    name = "size"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | None:
        if isinstance(value, int) or value is None:
            return value
        if str(value).lower() in ("none", "unlimited"):
            return None
        try:
            return int(parse_size(str(value), binary=True))
        except InvalidSize:
            self.fail(f"{value!r} is not a size (try 500M or 10GiB)", param, ctx)
