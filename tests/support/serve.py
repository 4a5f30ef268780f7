"""The one way the tests and the benchmarks start a real ``drivegate serve``:
this checkout's code, a loopback port (free by default), its output to a log
file or nowhere, ready once it prints ``drivegate serving URL``, and stopped
cleanly (terminate, wait, kill).

The CLI tests (tests/system/test_cli.py) start serve themselves: they test
what serve prints."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tests.support import ROOT

SERVING = re.compile(rb"^drivegate serving (\S+)\r?$", re.MULTILINE)


@dataclass
class Serve:
    """A running ``drivegate serve``: its URL (ends in ``/``), process and log."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path | None
    own_session: bool = False

    def stop(self, grace: float = 10) -> None:
        """SIGTERM (serve finishes its requests and exits), then SIGKILL if it is
        still there after ``grace`` seconds; returns once it is gone. Idempotent."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
            if self.process.poll() is not None:
                return
            with suppress(ProcessLookupError):
                if self.own_session:
                    os.killpg(self.process.pid, sig)
                else:
                    self.process.send_signal(sig)
            try:
                self.process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


def start_serve(
    *options: str,
    env: Mapping[str, str] | None = None,
    cwd: Path,
    log: Path | None = None,
    cli_options: Sequence[str] = (),
    port: int = 0,
    own_session: bool = False,
    timeout: float = 60,
) -> Serve:
    """Start ``drivegate [cli_options] serve --port PORT [options]`` and wait (at
    most ``timeout`` seconds) until it prints its URL.

    ``env`` is added to this process's environment; ``PYTHONPATH`` always points
    at this checkout. ``log``: serve's output (stdout and stderr, e.g. the request
    lines of ``-v``) is appended there; discarded if None. ``own_session`` puts
    serve in its own process group (a benchmark's Ctrl-C does not reach it; ``stop``
    signals the group). Raises RuntimeError, with the end of the log, if serve
    exits or stays silent instead."""
    cmd = [sys.executable, "-m", "drivegate", *cli_options, "serve", "--port", str(port), *options]
    out: BinaryIO | None = log.open("ab", buffering=0) if log is not None else None
    process = subprocess.Popen(
        cmd,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=out if out is not None else subprocess.DEVNULL,
        start_new_session=own_session,
    )
    try:
        url, printed = _wait_for_url(process, timeout)
    except BaseException as exc:
        Serve("", process, log, own_session).stop()
        if out is not None:
            out.close()
        if not isinstance(exc, RuntimeError):
            raise
        tail = log.read_text("utf-8", "replace")[-2000:] if log is not None else ""
        raise RuntimeError(f"{exc}\n{tail}") from None
    # The rest of stdout (the first login, on a new drive) is copied too, so that
    # serve never blocks on a full pipe.
    threading.Thread(target=_copy, args=(process, printed, out), daemon=True).start()
    return Serve(url.rstrip("/") + "/", process, log, own_session)


@contextmanager
def serving(
    *options: str,
    env: Mapping[str, str] | None = None,
    cwd: Path,
    log: Path | None = None,
    cli_options: Sequence[str] = (),
    own_session: bool = False,
) -> Iterator[Serve]:
    """``start_serve`` for the ``with`` block; stopped when it ends."""
    server = start_serve(
        *options, env=env, cwd=cwd, log=log, cli_options=cli_options, own_session=own_session
    )
    try:
        yield server
    finally:
        server.stop()


def _wait_for_url(process: subprocess.Popen[bytes], timeout: float) -> tuple[str, bytes]:
    """serve's URL, and all it printed on stdout so far."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    printed = b""
    deadline = time.monotonic() + timeout
    while (found := SERVING.search(printed)) is None:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise RuntimeError(f"drivegate serve printed no URL in {timeout:g} s")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(f"drivegate serve exited with {process.wait()}")
        printed += chunk
    return found.group(1).decode(), printed


def _copy(process: subprocess.Popen[bytes], printed: bytes, out: BinaryIO | None) -> None:
    """Append serve's stdout (``printed`` so far, then the rest until serve closes
    it) to ``out``, or drop it; then close ``out``."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    try:
        while printed:
            if out is not None:
                out.write(printed)
            printed = os.read(fd, 65536)
    except (OSError, ValueError):
        pass  # a full disk (the storage tests) or a closed pipe: only the log misses it
    finally:
        process.stdout.close()
        if out is not None:
            out.close()
