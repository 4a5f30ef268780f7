"""``drivegate serve``: the WebDAV server and the sync API on cheroot.

Threads: cheroot serves each request on one of ``--threads`` worker threads
(idle keep-alive connections wait in a selector, not on a thread). A sync
API long-poll holds its thread while it waits, so at most ``--long-polls``
are held at once (further ones answer 503 with Retry-After), which leaves
``threads - long_polls`` threads for everything else.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import logging
import os
import secrets
import signal
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote

import click
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from core import Drive, Settings
from core.cli import DriveCommand, DriveGroup, backend_options, open_drive
from davserver.app import build_app
from davserver.dav.locks import LockSweeper
from davserver.listencheck import listen_problem, probe_listen
from davserver.slowclients import BODY_MIN_RATE, HEADER_TIMEOUT, guarded_connection
from runtime.heap import settle_heap

log = logging.getLogger(__name__)
MAX_HEADER_BYTES = 64 * 1024


M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def _few_malloc_arenas() -> None:
    """Keep glibc to two malloc arenas: with one per thread, the chunk buffers freed
    during a long transfer stay cached in many arenas and the server's RSS grows
    with the file size. (Handing every chunk buffer back to the system instead,
    with a low mmap threshold, costs half the PUT throughput in page faults.)"""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        log.debug("not glibc: malloc left as it is")


STOP_GRACE = 15.0
"""Seconds a stop may take (requests finishing, workers ending) before the process
exits regardless."""


def _exit_if_stop_hangs(grace: float) -> None:
    """cheroot's stop joins its worker threads without a time limit once their sockets
    are closed, and a worker that missed its shutdown request (a race in cheroot's
    pool, cherrypy/cheroot#598) waits forever: a stop that has not finished after
    ``grace`` seconds ends the process anyway. Every commit is a transaction, so what
    a request had not committed by then is not half-written."""

    def give_up() -> None:
        log.warning("the server did not stop within %.0f s; exiting anyway", grace)
        logging.shutdown()
        os._exit(0)

    timer = threading.Timer(grace, give_up)
    timer.daemon = True
    timer.start()


def _first_admin(drive: Drive) -> str | None:
    """On a drive with no users, create ``admin`` with a random password and return
    the line that shows it (once); None when the drive has users."""
    if drive.has_users():
        return None
    password = secrets.token_urlsafe(12)
    drive.add_user("admin", password, is_admin=True)
    return (
        f"First login: user admin, password {password} "
        "(shown once; change it with: drivegate user passwd admin)"
    )


@click.command("serve", cls=DriveCommand)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port (0: any free one).")
@click.option(
    "--threads",
    default=64,
    show_default=True,
    type=click.IntRange(2),
    help="Worker threads (requests served at once).",
)
@click.option(
    "--long-polls",
    default=32,
    show_default=True,
    type=click.IntRange(1),
    help="Sync API long-polls held at once (each holds a worker thread); must be below --threads.",
)
@click.option(
    "--header-timeout",
    default=HEADER_TIMEOUT,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds a client has to send a request's headers (and the grace before its body "
    "must keep --body-min-rate); a late one is answered 408.",
)
@click.option(
    "--body-min-rate",
    default=BODY_MIN_RATE,
    show_default=True,
    type=click.IntRange(1),
    help="Bytes per second a request body must arrive at, on average.",
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    help="Address of a reverse proxy whose X-Forwarded-For is believed (repeatable); "
    "by default no one's is.",
)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@backend_options
def serve(  # noqa: PLR0917 (click passes options as arguments)
    host: str,
    port: int,
    threads: int,
    long_polls: int,
    header_timeout: float,
    body_min_rate: int,
    trusted_proxies: tuple[str, ...],
    tls_cert: Path | None,
    tls_key: Path | None,
    settings: Settings,
) -> None:
    """Serve the drive over WebDAV (each user sees their own root)."""
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if long_polls >= threads:
        raise click.UsageError("--long-polls must be below --threads (other requests need some)")
    for proxy in trusted_proxies:
        try:
            ipaddress.ip_address(proxy)
        except ValueError:
            raise click.UsageError(f"--trusted-proxy {proxy!r} is not an IP address") from None
    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _few_malloc_arenas()
    if problem := probe_listen(host, port):
        raise click.ClickException(problem)  # before the drive (and its first admin) exists
    with open_drive(settings, create=True) as drive:
        app = build_app(drive, long_polls=long_polls, trusted_proxies=trusted_proxies)
        server = wsgi.Server((host, port), app, numthreads=threads)
        # Strict framing, no thread held by a slow client, bodies without extra copies.
        server.ConnectionClass = guarded_connection(header_timeout, body_min_rate)
        server.max_request_header_size = MAX_HEADER_BYTES
        server.shutdown_timeout = 2  # do not wait out idle keep-alive connections on stop
        scheme = "http"
        if tls_cert is not None and tls_key is not None:
            server.ssl_adapter = BuiltinSSLAdapter(str(tls_cert), str(tls_key))
            scheme = "https"

        # SIGTERM (systemd, the tests) stops like Ctrl-C: finish requests, then exit.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            server.prepare()
        except OSError as exc:  # the port was taken since the probe
            raise click.ClickException(listen_problem(host, port, exc)) from None
        first_login = _first_admin(drive)
        settle_heap()
        sweeper = LockSweeper(drive.locks)
        sweeper.start()
        bound_host, bound_port = server.bind_addr[:2]
        # The URL and, on a new drive, the first login come last, together.
        click.echo(f"drivegate serving {scheme}://{bound_host}:{bound_port}/", file=sys.stdout)
        if first_login:
            click.echo(first_login, file=sys.stdout)
        sys.stdout.flush()
        try:
            server.serve()
        except KeyboardInterrupt:
            drive.feed.close()  # answer held long-polls now, so their threads can stop
            _exit_if_stop_hangs(STOP_GRACE)
            server.stop()
        finally:
            sweeper.stop()


@click.group(cls=DriveGroup)
def lock() -> None:
    """List and break WebDAV locks (an admin's tools for a stuck office lock)."""


@lock.command("list")
@backend_options
def lock_list(settings: Settings) -> None:
    """List the live WebDAV locks of every user."""
    with open_drive(settings) as drive:
        users = {f"/~{u.id}": u.name for u in drive.list_users()}
        records = drive.locks.all_live()
    click.echo(f"{'USER':<16} {'SCOPE':<9} {'DEPTH':<8} {'EXPIRES':<19}  PATH / TOKEN")
    for record in records:
        prefix, _, rest = record.root[1:].partition("/")
        expires = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.expire))
        click.echo(f"{users.get('/' + prefix, prefix):<16} {record.scope:<9} {record.depth:<8} "
                   f"{expires:<19}  /{unquote(rest)}  {record.token}")  # fmt: skip


@lock.command("break")
@click.argument("token")
@backend_options
def lock_break(token: str, settings: Settings) -> None:
    """Remove the lock TOKEN (as shown by `drivegate lock list`)."""
    with open_drive(settings) as drive:
        if not drive.locks.remove(token):
            raise click.ClickException(f"no lock {token}")
    click.echo(f"broke lock {token}")


COMMANDS: list[click.Command] = [serve, lock]
