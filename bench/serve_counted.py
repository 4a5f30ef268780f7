"""``drivegate`` whose server also logs the request bodies it receives.

``python bench/serve_counted.py -v serve …`` runs the ``drivegate`` command
with one more WSGI layer around the application ``drivegate serve`` builds:
after each request that carried a body it logs ``received N METHOD PATH``
(logger ``bench.received``, INFO, so ``-v``), N being the larger of the
declared Content-Length and the bytes the application read (a chunked body
has no Content-Length; a refused one is not read). The server's own request
log line gives the bytes sent. ``write_bench.py`` adds both up; nothing else
about the server changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import davserver.app
import davserver.cli
from davserver.app import Environ, StartResponse, WsgiApp

log = logging.getLogger("bench.received")


class CountingInput:
    """``wsgi.input`` that counts what is read through it."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.count += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self.stream.readline(size)
        self.count += len(data)
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = self.stream.readlines(hint)
        self.count += sum(len(line) for line in lines)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        for line in self.stream:
            self.count += len(line)
            yield line

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class ReceivedLog:
    """One ``received N METHOD PATH`` line per request with a body."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        counting = CountingInput(environ["wsgi.input"])
        environ["wsgi.input"] = counting
        body = self.app(environ, start_response)
        try:
            yield from body
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            declared = environ.get("CONTENT_LENGTH") or "0"
            received = max(int(declared) if declared.isdigit() else 0, counting.count)
            if received:
                method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
                log.info("received %d %s %s", received, method, path)


def counted(build: Callable[..., WsgiApp]) -> Callable[..., WsgiApp]:
    def build_counted(*args: Any, **kwargs: Any) -> WsgiApp:
        return ReceivedLog(build(*args, **kwargs))

    return build_counted


def main() -> None:
    # davserver.cli calls the build_app it imported: replace that name there.
    setattr(davserver.cli, "build_app", counted(davserver.app.build_app))  # noqa: B010
    from drivegate import main as drivegate

    drivegate()


if __name__ == "__main__":
    main()
