"""The mount's sub-commands of ``drivegate``: ``mount``, ``umount``, ``pin``,
``unpin`` and ``status``.

``mount`` checks everything it can before mounting (mountpoint, cache dir,
server, credentials), then goes to the background once the file system
answers (or stays in front with ``--foreground``; under systemd it reports
READY=1 then). Failures are one line on stderr and exit status 1, with
nothing mounted.

The other commands talk to the running mount through extended attributes
on the paths themselves (``user.drivegate.*``, see docs/mount.md): no socket,
no state of their own, and the same works from ``getfattr``/``setfattr``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from humanfriendly import format_size

from fusemount import mount as mounting
from fusemount.errors import MountError, NotADriveServer, Throttled, Unauthorized
from runtime.sizes import SizeParam

log = logging.getLogger(__name__)

ATTR = "user.drivegate."
DEFAULT_CACHE_SIZE = "10GiB"


def _describe(exc: MountError, options: mounting.MountOptions) -> str:
    if isinstance(exc, Unauthorized):
        return f"{options.url} refused the login of {options.user}: wrong password or token"
    if isinstance(exc, Throttled):
        return f"{options.url} refuses logins for a while (too many failures); try again later"
    if isinstance(exc, NotADriveServer):
        return f"{options.url} is not a drivegate server ({exc})"
    return str(exc)


def _read_secret(password_stdin: bool, token_file: Path | None) -> str:
    if password_stdin == (token_file is not None):
        raise click.UsageError("give exactly one of --password-stdin and --token-file")
    if token_file is not None:
        try:
            secret = token_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise click.ClickException(f"cannot read token file {token_file}: {exc}") from None
        if not secret:
            raise click.ClickException(f"token file {token_file} is empty")
        return secret
    secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        raise click.ClickException("no password on standard input")
    return secret


@click.command("mount")
@click.argument("url")
@click.argument("mountpoint", type=click.Path(path_type=Path))
@click.option("--user", "user_name", required=True, help="The drivegate user whose drive to mount.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read an app token (drivegate token create) from this file.")  # fmt: skip
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Replica and chunk cache [default: ~/.cache/drivegate/USER@HOST].")  # fmt: skip
@click.option("--cache-size", type=SizeParam(), default=DEFAULT_CACHE_SIZE, show_default=True,
              help="Hard limit of the chunk cache (500M, 10GiB, …).")  # fmt: skip
@click.option("--foreground", is_flag=True, help="Stay in the foreground (systemd, debugging).")
@click.option("--allow-other", is_flag=True, help="Let other local users see the mount.")
@click.option("--upload-delay", type=click.FloatRange(min=0),
              default=mounting.DEFAULT_UPLOAD_DELAY, show_default=True,
              help="Seconds between closing a written file and its upload.")  # fmt: skip
def mount(  # noqa: PLR0917 (click passes options as arguments)
    url: str,
    mountpoint: Path,
    user_name: str,
    password_stdin: bool,
    token_file: Path | None,
    cache_dir: Path | None,
    cache_size: int | None,
    foreground: bool,
    allow_other: bool,
    upload_delay: float,
) -> None:
    """Mount the drive at URL on MOUNTPOINT (an empty folder)."""
    if not url.startswith(("http://", "https://")):
        raise click.UsageError(f"{url!r} is not an http:// or https:// URL")
    if cache_size is None or cache_size < 16 * 1024 * 1024:
        raise click.UsageError("--cache-size must be a size of at least 16M")
    secret = _read_secret(password_stdin, token_file)
    options = mounting.MountOptions(
        url=url,
        user=user_name,
        secret=secret,
        mountpoint=mountpoint.absolute(),
        cache_dir=(cache_dir or mounting.default_cache_dir(url, user_name)).absolute(),
        cache_size=cache_size,
        allow_other=allow_other,
        upload_delay=upload_delay,
    )
    try:
        mounting.check_mountpoint(options.mountpoint)
    except MountError as exc:
        raise click.ClickException(str(exc)) from None
    if foreground:
        try:
            mounting.run(options, ready=lambda: _sd_notify("READY=1"))
        except MountError as exc:
            raise click.ClickException(_describe(exc, options)) from None
        _sd_notify("STOPPING=1")
        return
    _daemonize(options)


def _daemonize(options: mounting.MountOptions) -> NoReturn:
    """Fork; the child mounts and says "ok" (or why not) through a pipe; the parent relays it."""
    read_end, write_end = os.pipe()
    if os.fork() > 0:
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            message = pipe.read().strip()
        if message == "ok":
            sys.exit(0)
        click.echo(f"Error: {message or 'the mount process died (see mount.log in the cache dir)'}",
                   err=True)  # fmt: skip
        sys.exit(1)
    os.close(read_end)
    os.setsid()
    _detach_stdio(options.cache_dir / "mount.log")
    told = False

    def ready() -> None:
        nonlocal told
        os.write(write_end, b"ok\n")
        os.close(write_end)
        told = True

    code = 0
    try:
        mounting.run(options, ready)
    except MountError as exc:
        code = 1
        if told:
            log.error("%s", _describe(exc, options))
        else:  # the parent says it; the cache dir may not even exist (and should not)
            os.write(write_end, _describe(exc, options).encode() + b"\n")
    except BaseException:
        code = 1
        log.exception("the mount failed")
        if not told:
            os.write(write_end, b"the mount failed (see mount.log in the cache dir)\n")
    finally:
        logging.shutdown()
    os._exit(code)


def _detach_stdio(log_path: Path) -> None:
    # Opened at the first line logged: a mount refused before it took its cache
    # dir leaves no file behind.
    handler = logging.FileHandler(log_path, delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(min(root.level, logging.INFO))
    logging.getLogger("httpx").setLevel(max(root.level, logging.WARNING))  # a line per request
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) how we are; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


# -- talking to a running mount through xattrs ----------------------------------------


def _get(path: Path, key: str) -> str:
    return os.getxattr(path, ATTR + key).decode("utf-8", "surrogateescape")


def _mount_info(path: Path) -> dict[str, Any]:
    """The running mount's description, or a clean error if PATH is not in one."""
    try:
        info = json.loads(_get(path, "mount"))
    except FileNotFoundError:
        raise click.ClickException(f"{path} does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ENOTCONN:
            raise click.ClickException(f"{path} is in a dead mount (its process is gone)") from None
        raise click.ClickException(f"{path} is not in a drivegate mount") from None
    if not isinstance(info, dict):
        raise click.ClickException(f"{path} is not in a drivegate mount")
    return info


def _size(size: int) -> str:
    """A size as every drivegate command says it (``user list`` too): 0 bytes, 2.5 MiB, …"""
    return format_size(size, binary=True)


def _set_pinned(
    paths: tuple[Path, ...], value: bytes, explain: Callable[[Path, OSError], str]
) -> None:
    failed = False
    for path in paths:
        _mount_info(path)
        try:
            os.setxattr(path, ATTR + "pinned", value)
        except OSError as exc:
            click.echo(f"Error: {explain(path, exc)}", err=True)
            failed = True
            continue
        click.echo(f"{'pinned' if value == b'1' else 'unpinned'} {path}")
    if failed:
        sys.exit(1)


@click.command("pin")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def pin(paths: tuple[Path, ...]) -> None:
    """Keep files or folders (and whatever arrives in them later) available offline."""

    def explain(path: Path, exc: OSError) -> str:
        if exc.errno == errno.ENOSPC:
            limit = _mount_info(path)["cache"]["limit"]
            return (
                f"cannot pin {path}: the pinned data would not fit in the cache"
                f" ({_size(limit)}); mount with a larger --cache-size or unpin something"
            )
        return f"cannot pin {path}: {exc.strerror}"

    _set_pinned(paths, b"1", explain)


@click.command("unpin")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def unpin(paths: tuple[Path, ...]) -> None:
    """Let the cache evict these files or folders again."""

    def explain(path: Path, exc: OSError) -> str:
        if exc.errno == errno.EPERM:
            holder = _get(path, "pinned_by")
            return f"{path} stays pinned through the pinned folder {holder}: unpin that instead"
        return f"cannot unpin {path}: {exc.strerror}"

    _set_pinned(paths, b"0", explain)


@click.command("status")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def status(paths: tuple[Path, ...]) -> None:
    """Show the state of PATHS and of their mount.

    \b
    STATE  online-only, partial, cached: how much of it is in the cache
           pinned, N files still downloading: kept offline, not all here yet
           pinned, available offline: every byte is here, and stays
           uploading: written here, not on the server yet
           quota exceeded, …: why an upload stopped (the content stays here)
           conflict: a conflicted copy holding your edit
    LOCAL  bytes on this machine (cache, or written here); SIZE: all of it"""
    info: dict[str, Any] = {}
    rows = []
    for path in paths:
        info = _mount_info(path)
        local, size = int(_get(path, "cached")), int(_get(path, "size"))
        rows.append((_get(path, "state"), _size(local), _size(size), str(path)))
    width = max(len("STATE"), *(len(row[0]) for row in rows))
    click.echo(f"{'STATE':<{width}} {'LOCAL':>11} {'SIZE':>11}  PATH")
    for state, local_text, size_text, shown in rows:
        click.echo(f"{state:<{width}} {local_text:>11} {size_text:>11}  {shown}")
    for line in _mount_lines(info):
        click.echo(line)


def _mount_lines(info: dict[str, Any]) -> list[str]:
    """The mount as a whole: connection and cache, pinned downloads, uploads."""
    cache, hydration = info["cache"], info["hydration"]
    lines = [
        f"mount: {'online' if info['online'] else 'OFFLINE'}, {info['user']} at {info['url']};"
        f" cache {_size(cache['used'])} of {_size(cache['limit'])}"
        f" ({_size(cache['pinned'])} pinned)"
    ]
    pinned, pending = hydration.get("files", 0), hydration["pending_files"]
    if pending:
        lines.append(f"downloads: {pending} of {_count(max(pinned, pending), 'pinned file')}"
                     f" still downloading ({_size(hydration['pending_bytes'])} to go)")  # fmt: skip
    elif pinned:
        lines.append(f"downloads: nothing pending; {_count(pinned, 'pinned file')},"
                     " all available offline")  # fmt: skip
    else:
        lines.append("downloads: nothing pending; nothing is pinned")
    if hydration["problem"]:
        lines.append(f"downloads stopped: {hydration['problem']}")
    uploads = info.get("uploads", {"pending": 0, "problems": []})
    lines.append(f"uploads: {uploads['pending'] or 'nothing'} pending")
    for problem in uploads["problems"]:
        lines.append(f"upload stopped: {problem['path']}: {problem['error']}")
    for conflict in uploads.get("conflicts", []):
        lines.append(f"conflict: {conflict['copy']} holds your edit of {conflict['original']}")
    for refused in uploads.get("refused_changes", []):
        lines.append(f"change refused by the server: {refused}")
    return lines


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}" if number == 1 else f"{number} {thing}s"


@click.command("umount")
@click.argument("mountpoint", type=click.Path(path_type=Path))
@click.option("--no-wait", is_flag=True,
              help="Do not wait for pending uploads (they resume at the next mount).")  # fmt: skip
def umount(mountpoint: Path, no_wait: bool) -> None:
    """Upload what is pending, unmount a drivegate mount and wait for its process to finish.

    Interrupted (Ctrl-C) while uploads are pending, it says which and unmounts:
    the queue is on disk, and the next mount resumes the uploads."""
    pid = None
    try:
        info = _mount_info(mountpoint)
        pid = int(info["pid"])
        if not no_wait:
            _drain_uploads(mountpoint, info)
    except click.ClickException:
        if not os.path.ismount(mountpoint) and not _is_dead_mount(mountpoint):
            raise
    result = subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True, text=True,
                            check=False)  # fmt: skip
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"
        raise click.ClickException(f"cannot unmount {mountpoint}: {reason}")
    if pid is not None and pid != os.getpid():
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    click.echo(f"unmounted {mountpoint}")


def _waiting(info: dict[str, Any]) -> int:
    """Uploads that can still finish (stopped ones wait for the user)."""
    uploads = info.get("uploads") or {}
    return int(uploads.get("pending", 0)) - len(uploads.get("problems", []))


def _drain_uploads(mountpoint: Path, info: dict[str, Any]) -> None:
    total = _waiting(info)
    if total > 0:
        with contextlib.suppress(OSError):
            os.setxattr(mountpoint, "user.drivegate.upload", b"now")
        try:
            with click.progressbar(length=total, label="uploading", file=sys.stderr) as bar:
                done = 0
                while (left := _waiting(info)) > 0 and info.get("online", True):
                    bar.update(max(total - left, 0) - done)
                    done = max(total - left, 0)
                    time.sleep(0.2)
                    info = _mount_info(mountpoint)
                bar.update(max(total - left, 0) - done)
            if left > 0:
                click.echo(f"offline: {left} uploads still pending "
                           "(they resume at the next mount)", err=True)  # fmt: skip
        except KeyboardInterrupt:
            with contextlib.suppress(click.ClickException):
                info = _mount_info(mountpoint)
            paths = (info.get("uploads") or {}).get("pending_paths", [])
            click.echo(f"\ninterrupted: {_waiting(info)} uploads still pending "
                       "(they resume at the next mount):", err=True)  # fmt: skip
            for path in paths:
                click.echo(f"  {path}", err=True)
    for problem in (info.get("uploads") or {}).get("problems", []):
        click.echo(f"not uploaded: {problem['path']}: {problem['error']}", err=True)


def _is_dead_mount(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a finished process its parent has not reaped yet is a zombie: done too
        with open(f"/proc/{pid}/stat") as proc:
            return proc.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


COMMANDS: list[click.Command] = [mount, umount, pin, unpin, status]
