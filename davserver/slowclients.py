"""Slow clients must not hold worker threads: cheroot's connection class with a
header deadline that costs no thread, and a minimum pace for request bodies.

cheroot hands a connection to a worker thread as soon as its first byte
arrives, and the worker then reads the request line and headers with blocking
reads whose timeout applies to each read: a client sending a byte every few
seconds held a worker for ever, and as many such sockets as ``--threads``
stopped the server.

Here (as nginx's ``client_header_timeout``) a worker only ever takes what has
already arrived, without waiting: until the blank line that ends the headers
has come, the bytes are kept aside and the connection goes back to cheroot's
selector (which also closes it after ``server.timeout`` seconds of silence).
A request whose headers are not complete ``header_timeout`` seconds after its
first byte is answered 408 and closed.

A body must then arrive at ``body_min_rate`` bytes per second on average,
after a grace of ``header_timeout`` seconds from the end of the headers;
each read still waits at most ``server.timeout`` seconds. A slower body ends
the request with 408 and closes the connection.
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

from davserver.framing import StrictRequest
from davserver.sockets import BodyConnection

HEADER_TIMEOUT = 20.0
BODY_MIN_RATE = 1024
_END_OF_HEADERS = b"\r\n\r\n"
_NO_DATA_YET = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_LATE_BODY = b"the request headers did not arrive in time\n"
_LATE = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_LATE_BODY), _LATE_BODY)
)


class Pace:
    """The pace a request body must keep: ``grace`` seconds from ``start``, plus one
    second for every ``min_rate`` bytes received."""

    def __init__(self, grace: float, min_rate: float) -> None:
        self.grace = grace
        self.min_rate = min_rate
        self.start: float | None = None
        self.received = 0

    def begin(self) -> None:
        self.start = time.monotonic()
        self.received = 0

    def end(self) -> None:
        self.start = None

    def allowance(self) -> float | None:
        """Seconds the next read may wait; None while no request is being served."""
        if self.start is None:
            return None
        deadline = self.start + self.grace + self.received / self.min_rate
        return deadline - time.monotonic()


class PacedSocketIO(socket.SocketIO):
    """The raw reader under the connection's buffer: each read waits at most until
    the body falls behind its pace (and at most the socket's own timeout)."""

    def __init__(self, sock: socket.socket, pace: Pace) -> None:
        super().__init__(sock, "rb")
        self.sock = sock
        self.pace = pace
        self.idle_timeout = sock.gettimeout()

    def readinto(self, buffer: Any) -> int | None:
        allowance = self.pace.allowance()
        if allowance is None:
            return super().readinto(buffer)
        if allowance <= 0:
            raise TimeoutError("timed out")  # cheroot answers 408 and closes
        idle = self.idle_timeout
        self.sock.settimeout(allowance if idle is None else min(allowance, idle))
        try:
            received = super().readinto(buffer)
        finally:
            self.sock.settimeout(idle)  # writes keep the server's own timeout
        self.pace.received += received or 0
        return received


class GuardedConnection(BodyConnection):
    """cheroot's connection with strict framing, the header deadline and the body pace
    (bounds from ``guarded_connection``)."""

    RequestHandlerClass = StrictRequest
    header_timeout: float = HEADER_TIMEOUT
    body_min_rate: float = BODY_MIN_RATE

    def __init__(self, server: Any, sock: socket.socket, *args: Any) -> None:
        super().__init__(server, sock, *args)
        self.pace = Pace(self.header_timeout, self.body_min_rate)
        reader: Any = self.rfile  # a _pyio.BufferedReader: its raw is swapped in place
        reader._raw = PacedSocketIO(sock, self.pace)
        self.head = bytearray()
        self.head_started: float | None = None

    def communicate(self) -> bool:
        """Serve the next request once its headers are all here; until then, True
        sends the connection back to the selector to wait for more."""
        if self.head_started is None:
            self.head_started = time.monotonic()
        arrived = self._take_arrived()
        if not self._headers_complete():
            if not arrived:
                return False  # the client closed the connection
            if time.monotonic() - self.head_started > self.header_timeout:
                self._answer_late()
                return False
            return True
        self._give_back()
        self.pace.begin()
        try:
            return bool(super().communicate())  # type: ignore[no-untyped-call]
        finally:
            self.pace.end()

    def _take_arrived(self) -> bool:
        """Move what was buffered or has arrived into ``head`` without waiting;
        False if the client closed the connection."""
        reader: Any = self.rfile
        self.head += reader._read_buf[reader._read_pos :]
        reader._reset_read_buf()
        limit = self.server.max_request_header_size or 1 << 20
        sock = self.socket
        timeout = sock.gettimeout()
        sock.settimeout(0)
        try:
            while len(self.head) <= limit:
                try:
                    data = sock.recv(64 * 1024)
                except _NO_DATA_YET:
                    return True
                if not data:
                    return False
                self.head += data
        except OSError:
            return False
        finally:
            sock.settimeout(timeout)
        return True

    def _headers_complete(self) -> bool:
        # Over the size limit counts as complete: cheroot refuses it without waiting.
        limit = self.server.max_request_header_size or 1 << 20
        return _END_OF_HEADERS in self.head or len(self.head) > limit

    def _give_back(self) -> None:
        """Put ``head`` back in front of the reader's buffer for cheroot to parse."""
        reader: Any = self.rfile
        reader._read_buf = bytes(self.head)
        reader._read_pos = 0
        self.head = bytearray()
        self.head_started = None

    def _answer_late(self) -> None:
        try:
            self.socket.settimeout(0)
            self.socket.send(_LATE)
        except OSError:
            pass


def guarded_connection(header_timeout: float, body_min_rate: float) -> type[GuardedConnection]:
    """The connection class for cheroot's ``ConnectionClass``, with these bounds."""
    bounds = {"header_timeout": header_timeout, "body_min_rate": body_min_rate}
    return type("GuardedConnection", (GuardedConnection,), bounds)
