"""cheroot's socket files, without the copies that cost GET and PUT most of their time.

cheroot reads and writes plain-HTTP sockets through pure-Python (``_pyio``)
buffered files. That is fine for request lines and headers, but a body block
of a few MiB pays for it several times over:

- writing, each block is appended to a ``bytearray``, copied into a new
  ``bytes`` before every ``send`` and shifted down after every partial send;
- reading, every ``recv`` gets a freshly allocated (and zeroed) buffer of the
  whole requested size, which is then trimmed and copied again.

Here large blocks bypass the buffers: a write sends straight from the
caller's bytes (after whatever small writes are still buffered), one ``send``
at a time so that the socket timeout still applies to each send and not to
the whole block; a read takes what is buffered, then ``recv_into`` one
buffer of the requested size, and returns one ``bytes`` copy of it. Small
reads and writes go the usual way, so request parsing, ``has_data`` and
keep-alive are unchanged.
TLS connections keep the SSL adapter's own files.
"""

from __future__ import annotations

import socket
from typing import Any

from cheroot.makefile import MakeFile, StreamReader, StreamWriter
from cheroot.server import HTTPConnection

LARGE = 64 * 1024
"""Reads and writes of at least this many bytes skip the Python-level buffer."""


class BodyReader(StreamReader):
    """cheroot's reader, with large reads received straight into one buffer."""

    def __init__(self, sock: socket.socket, mode: str = "rb", bufsize: int = 8192) -> None:
        super().__init__(sock, mode, bufsize)
        self._sock = sock

    def read(self, size: int | None = -1) -> bytes:
        pyio: Any = self  # _pyio.BufferedReader's internals are untyped
        if size is None or size < LARGE:
            small: bytes = pyio.read_small(size)
            return small
        with pyio._read_lock:
            buffered: bytes = pyio._read_buf[pyio._read_pos :]
            pyio._reset_read_buf()
            if len(buffered) >= size:
                pyio._read_buf = buffered[size:]
        if len(buffered) >= size:
            data = buffered[:size]
        else:
            # One buffer per read, freed with it: a buffer kept per worker thread
            # would grow the server's memory with the number of threads.
            view = memoryview(bytearray(size))
            filled = len(buffered)
            view[:filled] = buffered
            while filled < size:
                # Through the raw reader, not the socket: it may pace reads (slowclients).
                received = pyio.raw.readinto(view[filled:size])
                if not received:
                    break
                filled += received
            data = bytes(view[:filled])
        self.bytes_read += len(data)
        return data

    def read_small(self, size: int | None) -> bytes:
        """cheroot's own read."""
        return super().read(size)  # type: ignore[no-any-return,no-untyped-call]


class BodyWriter(StreamWriter):
    """cheroot's writer, with large blocks sent from the caller's buffer."""

    def __init__(self, sock: socket.socket, mode: str = "wb", bufsize: int = 8192) -> None:
        super().__init__(sock, mode, bufsize)
        self._sock = sock

    def write(self, b: Any) -> Any:
        pyio: Any = self  # _pyio.BufferedWriter's internals are untyped
        if isinstance(b, str) or len(b) < LARGE:
            return pyio.write_small(b)
        pyio._checkClosed()
        view = memoryview(b).cast("B")
        total = len(view)
        with pyio._write_lock:
            pyio._flush_unlocked()
            while view:
                view = view[self._sock.send(view) :]
        self.bytes_written += total
        return total

    def write_small(self, b: Any) -> Any:
        """cheroot's own write."""
        return super().write(b)  # type: ignore[no-untyped-call]


def body_makefile(sock: socket.socket, mode: str = "r", bufsize: int = 8192) -> Any:
    """cheroot's ``MakeFile`` with the readers and writers above."""
    cls = BodyReader if "r" in mode else BodyWriter
    return cls(sock, mode, bufsize)


class BodyConnection(HTTPConnection):
    """An HTTP connection whose plain (not TLS) socket files are the ones above."""

    def __init__(self, server: Any, sock: socket.socket, makefile: Any = MakeFile) -> None:
        super().__init__(server, sock, body_makefile if makefile is MakeFile else makefile)
