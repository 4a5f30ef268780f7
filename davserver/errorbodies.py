"""Error answers whose ``Content-Length`` is the length of the body they send.

An error page is small, so ``HonestErrors`` holds back the status line of every
4xx/5xx answer until the page has been produced, then sends it with the length
counted from the bytes. A component that promised a body it never sent (WsgiDAV
did, for a path escaping the root) would otherwise make a keep-alive client read
its next answer as that body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]

MAX_HELD_BODY = 256 * 1024
"""An error body longer than this goes out as the application sent it (no page of
ours is nearly as long; holding it would cost memory for nothing)."""


class _Held:
    """The start_response of one request, holding back an error's status and headers."""

    def __init__(self, start_response: StartResponse) -> None:
        self.real = start_response
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []

    def start_response(self, status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
        if status[:1] in ("4", "5"):
            self.status, self.headers = status, headers
            return self.body.append  # PEP 3333's write(), into the held body
        self.status = None
        self.body.clear()  # an error held until now is replaced (PEP 3333's exc_info)
        return self.real(status, headers, *exc_info)

    def release(self, *, counted: bool) -> None:
        """Send the held status; with ``counted``, its Content-Length is the held body's."""
        assert self.status is not None
        headers = self.headers
        if counted:
            length = str(sum(len(block) for block in self.body))
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", length))
        self.real(self.status, headers)
        self.status = None


class HonestErrors:
    """Wraps ``app`` so that each 4xx/5xx answer's Content-Length matches its body."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "HEAD":  # no body: the length is the GET's
            return self.app(environ, start_response)
        held = _Held(start_response)
        return self._answer(self.app(environ, held.start_response), held)

    @staticmethod
    def _answer(body: Iterable[bytes], held: _Held) -> Iterator[bytes]:
        try:
            size = 0
            for block in body:
                if held.status is None:
                    yield block
                    continue
                held.body.append(block)
                size += len(block)
                if size > MAX_HELD_BODY:
                    held.release(counted=False)
                    yield from held.body
                    held.body.clear()
            if held.status is not None:
                held.release(counted=True)
            yield from held.body
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
