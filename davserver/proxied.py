"""The client's address behind a reverse proxy: ``X-Forwarded-For`` is believed
only from the configured proxy addresses (``--trusted-proxy``), and then only its
rightmost entry that is not itself a trusted proxy. Anyone else's header is
ignored, so a client cannot pick the address the login throttle counts it under."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any


class ClientAddress:
    """WSGI middleware: sets ``REMOTE_ADDR`` to the client's address as the trusted
    proxies report it (unchanged for requests that do not come from one)."""

    def __init__(self, app: Any, trusted: Iterable[str]) -> None:
        self.app = app
        self.trusted = frozenset(str(ipaddress.ip_address(address)) for address in trusted)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.trusted and environ.get("REMOTE_ADDR") in self.trusted:
            client = self.client(environ.get("HTTP_X_FORWARDED_FOR", ""))
            if client is not None:
                environ["REMOTE_ADDR"] = client
        return self.app(environ, start_response)

    def client(self, forwarded_for: str) -> str | None:
        """The rightmost valid address that is not a trusted proxy, or None."""
        for entry in reversed(forwarded_for[:4096].split(",")):
            try:
                address = str(ipaddress.ip_address(entry.strip()))
            except ValueError:
                return None  # a malformed hop: believe nothing further left
            if address not in self.trusted:
                return address
        return None
