"""Raw HTTP over a socket, for requests no well-behaved client library would send."""

from __future__ import annotations

import base64
import socket
from urllib.parse import urlsplit


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def basic(user: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()


def exchange(url: str, request: bytes, timeout: float = 10) -> tuple[int, bytes]:
    """Send ``request`` on a new connection; the status of the first answer and
    everything the server sent until it closed the connection (or ``timeout``)."""
    with socket.create_connection(address(url), timeout=timeout) as sock:
        # Requests say "Connection: close" (or are refused): the server closes.
        sock.sendall(request)
        received = read_until_closed(sock)
    status_line = received.split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), received


def read_until_closed(sock: socket.socket) -> bytes:
    """What the server sends until it closes; TimeoutError if it has not closed
    within the socket's timeout."""
    received = b""
    while data := sock.recv(65536):
        received += data
    return received
