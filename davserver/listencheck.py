"""Whether ``drivegate serve`` can listen on its address, said in one line.

``serve`` probes the address before it opens (or creates) the drive, so a taken
port ends the command with a one-line message naming ``--port`` instead of a
traceback after the first login was printed. The probe binds the way cheroot
does (``SO_REUSEADDR``, so a port in TIME_WAIT is not refused) and closes again;
``listen_problem`` also words the error of cheroot's own bind, should another
program take the port in between.
"""

from __future__ import annotations

import errno
import socket


def listen_problem(host: str, port: int, exc: OSError) -> str:
    """What is wrong with listening on ``host:port`` and what to do, in one line."""
    where = f"port {port} on {host}"
    if exc.errno == errno.EADDRINUSE or "Address already in use" in str(exc):
        return (
            f"{where} is already in use (another drivegate serve?): stop that program "
            f"or choose a free port with --port, e.g. --port {port + 1}"
        )
    if exc.errno == errno.EACCES:
        return f"no permission to listen on {where} (below 1024 needs root): choose one with --port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine: choose one with --host"
    return f"cannot listen on {where}: {exc.strerror or exc} (see --host and --port)"


def probe_listen(host: str, port: int) -> str | None:
    """None if ``host:port`` can be bound now, else ``listen_problem``'s line.

    Port 0 (any free port) always can. A host name that does not resolve is a problem too.
    """
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return f"cannot listen on {host}: {exc.strerror} (choose an address with --host)"
    if port == 0:
        return None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return listen_problem(host, port, exc)
    return None
