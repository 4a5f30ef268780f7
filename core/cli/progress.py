"""The progress of an import or export: files and bytes done out of the total, and the rate.

On a terminal it is click's progress bar (by bytes, with percent and ETA) with
``120/400 files, 1.2 GiB of 3.0 GiB, 85 MiB/s`` beside it. Anywhere else (the
systemd journal, a CI log, a pipe) a bar would print nothing useful, so a plain
line of the same, ``imported 120/400 files, 1.2 GiB of 3.0 GiB, 85 MiB/s``, is
written every ``interval`` seconds instead. Both go to standard error; the
command's own summary stays on standard output.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO, TypeVar

import click
from humanfriendly import format_size

PLAIN_INTERVAL = 10.0
"""Seconds between plain progress lines by default."""

F = TypeVar("F", bound=Callable[..., Any])


def progress_option(func: F) -> F:
    """A hidden ``--progress-seconds`` (env ``DRIVEGATE_PROGRESS_SECONDS``): the
    interval of the plain progress lines, passed as ``progress_seconds``."""
    return click.option(
        "--progress-seconds",
        type=click.FloatRange(0),
        default=PLAIN_INTERVAL,
        envvar="DRIVEGATE_PROGRESS_SECONDS",
        hidden=True,
    )(func)


def _size(count: float) -> str:
    return str(format_size(int(count), binary=True))


class Transfer:
    """Counts a transfer of ``files`` files and ``total`` bytes and shows it.

    Use as a context manager; call ``add`` as bytes move (from any one thread)
    and ``file_done`` after each file. ``stream`` and ``tty`` are for tests.
    """

    def __init__(
        self,
        verb: str,
        files: int,
        total: int,
        *,
        interval: float = PLAIN_INTERVAL,
        stream: TextIO | None = None,
        tty: bool | None = None,
    ) -> None:
        self.verb, self.files, self.total = verb, files, total
        self.files_done = self.done = 0
        self._stream = stream or sys.stderr
        self._interval = interval
        self._started = time.monotonic()
        self._next_line = self._started + interval
        self._bar: Any = None
        if self._stream.isatty() if tty is None else tty:
            self._bar = click.progressbar(
                length=max(total, 1),
                label=f"{verb}ing",
                file=self._stream,
                show_pos=False,
                show_percent=True,
                show_eta=True,
                item_show_func=lambda _: self.summary(),
            )

    def summary(self) -> str:
        """``120/400 files, 1.2 GiB of 3.0 GiB, 85 MiB/s``."""
        elapsed = max(time.monotonic() - self._started, 1e-3)
        return (
            f"{self.files_done}/{self.files} files, {_size(self.done)} of {_size(self.total)}, "
            f"{_size(self.done / elapsed)}/s"
        )

    def add(self, count: int) -> None:
        """``count`` more bytes moved."""
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
        elif (now := time.monotonic()) >= self._next_line:
            self._next_line = now + self._interval
            self._stream.write(f"{self.verb}ed {self.summary()}\n")
            self._stream.flush()

    def file_done(self) -> None:
        self.files_done += 1
        self.add(0)

    def counting(self, source: io.RawIOBase | io.BufferedIOBase) -> io.RawIOBase:
        """``source`` (a file) read through ``add``: a raw stream whose ``readinto``
        counts, so a writer still reads into its own buffers without a copy."""
        return _Counted(source, self.add)

    def __enter__(self) -> Transfer:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(kind, exc, traceback)


class _Counted(io.RawIOBase):
    def __init__(
        self, source: io.RawIOBase | io.BufferedIOBase, count: Callable[[int], None]
    ) -> None:
        super().__init__()
        self._source = source
        self._count = count

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._source.readinto(buffer) or 0
        self._count(n)
        return n
