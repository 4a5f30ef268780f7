"""The core's sub-commands of ``drivegate``: users, tokens, import/export,
listing, versions, trash, gc, fsck and migrations.

Every command takes ``--data-dir``, ``--db-url``, ``--store-url`` and
``--config`` (also ``DRIVEGATE_*`` variables and a TOML file; see
``core.settings``). Any DriveError ends the command with a one-line message
and exit status 1.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from humanfriendly import InvalidSize, format_size, parse_size

from core.db.engine import Database
from core.db.migrate import upgrade
from core.drive import Drive
from core.errors import DriveError, NotFound
from core.ids import NodeId, UserId
from core.names import join_path, split_path
from core.records import NodeInfo
from core.settings import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])


class DriveGroup(click.Group):
    """A click group that turns DriveError into a clean CLI error."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DriveError as exc:
            raise click.ClickException(str(exc)) from None


class SizeParam(click.ParamType):  # type: ignore[type-arg]
    """A byte size such as ``500M``, ``10GiB`` or ``none`` (no limit); K/M/G are binary."""

    name = "size"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | None:
        if isinstance(value, int) or value is None:
            return value
        if str(value).lower() in ("none", "unlimited"):
            return None
        try:
            return int(parse_size(str(value), binary=True))
        except InvalidSize:
            self.fail(f"{value!r} is not a size (try 500M or 10GiB)", param, ctx)


def _help(field: str) -> str:
    return Settings.model_fields[field].description or ""


def backend_options(func: F) -> F:
    """Add the storage options to a command and pass it ``settings``."""

    @click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help=_help("data_dir") + " [env DRIVEGATE_DATA_DIR; default ./drivegate-data]",
    )
    @click.option("--db-url", help=_help("db_url") + " [env DRIVEGATE_DB_URL]")
    @click.option("--store-url", help=_help("store_url") + " [env DRIVEGATE_STORE_URL]")
    @click.option(
        "--config",
        "config_file",
        envvar="DRIVEGATE_CONFIG",
        type=click.Path(dir_okay=False, path_type=Path),
        help="TOML settings file [env DRIVEGATE_CONFIG].",
    )
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        data_dir: Path | None,
        db_url: str | None,
        store_url: str | None,
        config_file: Path | None,
        **kwargs: Any,
    ) -> Any:
        try:
            settings = load_settings(
                config_file, data_dir=data_dir, db_url=db_url, store_url=store_url
            )
        except DriveError as exc:
            raise click.ClickException(str(exc)) from None
        return func(*args, settings=settings, **kwargs)

    return wrapper  # type: ignore[return-value]


user_option = click.option(
    "--user", "user_name", required=True, help="The user whose drive to use."
)


@contextmanager
def open_drive(settings: Settings) -> Iterator[Drive]:
    with Drive.open(settings) as drive:
        yield drive


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on standard input")
        return password
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _progress(total: int, label: str) -> Any:
    return click.progressbar(
        length=total, label=label, file=sys.stderr, show_pos=False, show_percent=True, show_eta=True
    )


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


# users and tokens -----------------------------------------------------------


@click.group(cls=DriveGroup)
def user() -> None:
    """Manage users."""


@user.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Make the user an administrator.")
@click.option(
    "--quota", type=SizeParam(), default=None, help="Storage quota, e.g. 10GiB (default: none)."
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@backend_options
def user_add(
    name: str, admin: bool, quota: int | None, password_stdin: bool, settings: Settings
) -> None:
    """Create user NAME with a password."""
    password = read_password(password_stdin)
    with open_drive(settings) as drive:
        info = drive.add_user(name, password, is_admin=admin, quota=quota)
    click.echo(f"created user {info.name}" + (" (admin)" if info.is_admin else ""))


@user.command("list")
@backend_options
def user_list(settings: Settings) -> None:
    """List users with their quota and usage."""
    with open_drive(settings) as drive:
        rows = drive.list_users()
    click.echo(f"{'NAME':<24} {'ADMIN':<5} {'USED':>12} {'QUOTA':>12}")
    for info in rows:
        quota = format_size(info.quota_bytes, binary=True) if info.quota_bytes is not None else "-"
        click.echo(
            f"{info.name:<24} {'yes' if info.is_admin else 'no':<5} "
            f"{format_size(info.used_bytes, binary=True):>12} {quota:>12}"
        )


@user.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@backend_options
def user_passwd(name: str, password_stdin: bool, settings: Settings) -> None:
    """Set the password of user NAME."""
    password = read_password(password_stdin)
    with open_drive(settings) as drive:
        drive.set_password(name, password)
    click.echo(f"password of {name} changed")


@user.command("quota")
@click.argument("name")
@click.argument("size", type=SizeParam())
@backend_options
def user_quota(name: str, size: int | None, settings: Settings) -> None:
    """Set the quota of user NAME (SIZE like 10GiB, or 'none')."""
    with open_drive(settings) as drive:
        drive.set_quota(name, size)
    click.echo(f"quota of {name}: {format_size(size, binary=True) if size is not None else 'none'}")


@click.group(cls=DriveGroup)
def token() -> None:
    """Manage app tokens (passwords for one device or app)."""


@token.command("create")
@click.argument("name")
@user_option
@backend_options
def token_create(name: str, user_name: str, settings: Settings) -> None:
    """Create an app token called NAME; it is shown only this once."""
    with open_drive(settings) as drive:
        secret = drive.create_token(user_name, name)
    click.echo(secret)
    click.echo("Store this token now: it cannot be shown again.", err=True)


# files ------------------------------------------------------------------------


def _walk_local(src: Path) -> Iterator[tuple[Path, str]]:
    """(local path, relative drive path) of every folder and regular file, parents first."""
    for folder, dirs, files in os.walk(src):
        dirs.sort()
        base = Path(folder)
        for name in dirs:
            yield base / name, (base / name).relative_to(src).as_posix()
        for name in sorted(files):
            yield base / name, (base / name).relative_to(src).as_posix()


@click.command("import")
@click.argument("src_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("dest_path")
@user_option
@click.option("--force", is_flag=True, help="Upload files even when size and mtime already match.")
@backend_options
def import_(src_dir: Path, dest_path: str, user_name: str, force: bool, settings: Settings) -> None:
    """Copy local folder SRC_DIR into the drive at DEST_PATH (created if missing)."""
    entries = list(_walk_local(src_dir))
    total = sum(
        path.stat().st_size for path, _ in entries if path.is_file() and not path.is_symlink()
    )
    files = skipped = 0
    with open_drive(settings) as drive, _progress(total, "importing") as bar:
        uid = drive.user(user_name).id
        base = join_path(split_path(dest_path))
        drive.makedirs(uid, base)
        for local, rel in entries:
            target = join_path([*split_path(base), *split_path(rel)])
            if local.is_symlink() or not (local.is_dir() or local.is_file()):
                click.echo(f"skipped (not a regular file): {local}", err=True)
                continue
            if local.is_dir():
                drive.makedirs(uid, target)
                continue
            stat = local.stat()
            if not force and _unchanged(drive, uid, target, stat.st_size, stat.st_mtime_ns):
                skipped += 1
            else:
                with open(local, "rb") as handle:
                    drive.write(
                        uid,
                        target,
                        handle,
                        expected_size=stat.st_size,
                        mtime_ns=stat.st_mtime_ns,
                        origin="import",
                    )
                files += 1
            bar.update(stat.st_size)
    click.echo(
        f"imported {files} files into {base}" + (f", {skipped} unchanged" if skipped else "")
    )


def _unchanged(drive: Drive, user: UserId, path: str, size: int, mtime_ns: int) -> bool:
    try:
        node = drive.stat(user, path)
    except NotFound:
        return False
    return not node.is_folder and node.size == size and node.mtime_ns == mtime_ns


@click.command("export")
@click.argument("src_path")
@click.argument("dest_dir", type=click.Path(file_okay=False, path_type=Path))
@user_option
@backend_options
def export(src_path: str, dest_dir: Path, user_name: str, settings: Settings) -> None:
    """Copy SRC_PATH (a file or folder of the drive) into local folder DEST_DIR."""
    with open_drive(settings) as drive:
        uid = drive.user(user_name).id
        top = drive.stat(uid, src_path)
        plan = list(_walk_drive(drive, uid, join_path(split_path(src_path)), top))
        total = sum(node.size for _, node in plan if not node.is_folder)
        root = dest_dir / (top.name or "")
        with _progress(total, "exporting") as bar:
            for rel, node in plan:
                local = root / rel if rel else root
                if node.is_folder:
                    local.mkdir(parents=True, exist_ok=True)
                    continue
                local.parent.mkdir(parents=True, exist_ok=True)
                _download(
                    drive,
                    uid,
                    node,
                    local,
                    "/".join([join_path(split_path(src_path)), rel]).rstrip("/"),
                )
                bar.update(node.size)
    click.echo(f"exported {sum(1 for _, n in plan if not n.is_folder)} files to {root}")


def _walk_drive(
    drive: Drive, user: UserId, path: str, node: NodeInfo, rel: str = ""
) -> Iterator[tuple[str, NodeInfo]]:
    yield rel, node
    if node.is_folder:
        for child in drive.listdir(user, path):
            yield from _walk_drive(
                drive,
                user,
                f"{path.rstrip('/')}/{child.name}",
                child,
                f"{rel}/{child.name}".lstrip("/"),
            )


def _download(drive: Drive, user: UserId, node: NodeInfo, local: Path, path: str) -> None:
    partial = local.with_name(local.name + ".drivegate-partial")
    with drive.open_read(user, path) as reader, open(partial, "wb") as out:
        while block := reader.read(4 * 1024 * 1024):
            out.write(block)
    os.replace(partial, local)
    os.utime(local, ns=(node.mtime_ns, node.mtime_ns))


@click.command("ls")
@click.argument("path", default="/")
@user_option
@click.option("-l", "long", is_flag=True, help="Show size, time and version.")
@backend_options
def ls(path: str, user_name: str, long: bool, settings: Settings) -> None:
    """List a folder of the drive."""
    with open_drive(settings) as drive:
        uid = drive.user(user_name).id
        node = drive.stat(uid, path)
        children = drive.listdir(uid, path) if node.is_folder else [node]
    for child in children:
        name = child.name + ("/" if child.is_folder else "")
        if long:
            version = f"v{child.version_number}" if child.version_number else "-"
            click.echo(f"{child.size:>14} {_when(child.mtime)} {version:>5}  {name}")
        else:
            click.echo(name)


@click.command("versions")
@click.argument("path")
@user_option
@backend_options
def versions_cmd(path: str, user_name: str, settings: Settings) -> None:
    """List the versions of a file."""
    with open_drive(settings) as drive:
        rows = drive.versions(drive.user(user_name).id, path)
    click.echo(f"{'VERSION':>7}  {'SAVED':<19}  {'SIZE':>14}  {'ORIGIN':<8} AUTHOR")
    for row in rows:
        mark = "*" if row.is_current else " "
        click.echo(
            f"{row.number:>6}{mark}  {_when(row.created_at):<19}  {row.size:>14}  "
            f"{row.origin:<8} {row.author or '-'}"
        )


@click.command("restore")
@click.argument("path")
@click.option("--version", "number", type=int, required=True, help="Version number to restore.")
@user_option
@backend_options
def restore(path: str, number: int, user_name: str, settings: Settings) -> None:
    """Make an old version of a file current again (as a new version)."""
    with open_drive(settings) as drive:
        info = drive.restore_version(drive.user(user_name).id, path, number)
    click.echo(f"restored version {number} of {path} as version {info.version_number}")


# trash ------------------------------------------------------------------------


@click.group(cls=DriveGroup)
def trash() -> None:
    """List, restore and purge deleted items."""


@trash.command("list")
@user_option
@backend_options
def trash_list(user_name: str, settings: Settings) -> None:
    """List the trash, newest first."""
    with open_drive(settings) as drive:
        entries = drive.trash(drive.user(user_name).id)
    click.echo(f"{'ID':>8}  {'DELETED':<19}  {'SIZE':>12}  ORIGINAL PATH")
    for entry in entries:
        name = entry.original_path + ("/" if entry.is_folder else "")
        click.echo(f"{entry.id:>8}  {_when(entry.trashed_at):<19}  {entry.size:>12}  {name}")


@trash.command("restore")
@click.argument("entry_id", type=int)
@user_option
@backend_options
def trash_restore(entry_id: int, user_name: str, settings: Settings) -> None:
    """Restore trash entry ENTRY_ID to its original place (keeping both if the name is taken)."""
    with open_drive(settings) as drive:
        path = drive.restore_trash(drive.user(user_name).id, NodeId(entry_id))
    click.echo(f"restored to {path}")


@trash.command("purge")
@click.argument("entry_ids", type=int, nargs=-1)
@click.option("--all", "purge_all", is_flag=True, help="Empty the whole trash.")
@user_option
@backend_options
def trash_purge(
    entry_ids: tuple[int, ...], purge_all: bool, user_name: str, settings: Settings
) -> None:
    """Delete trash entries for good (their space is reclaimed by gc)."""
    if not entry_ids and not purge_all:
        raise click.UsageError("name the entries to purge, or pass --all")
    with open_drive(settings) as drive:
        uid = drive.user(user_name).id
        ids = (
            [entry.id for entry in drive.trash(uid)]
            if purge_all
            else [NodeId(i) for i in entry_ids]
        )
        freed = sum(drive.purge_trash(uid, entry) for entry in ids)
    click.echo(f"purged {len(ids)} entries, {format_size(freed, binary=True)}")


# maintenance ------------------------------------------------------------------


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="Report what would be deleted; change nothing.")
@backend_options
def gc(dry_run: bool, settings: Settings) -> None:
    """Expire trash, prune old versions, and delete unreferenced chunks."""
    with open_drive(settings) as drive:
        report = drive.gc(dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb}: {report.trash_entries} expired trash entries, {report.versions} old versions, "
        f"{report.dead_uploads} dead uploads, {report.manifests} manifests, "
        f"{report.chunks} chunks ({format_size(report.chunk_bytes, binary=True)}), "
        f"{report.orphan_blobs} orphan blobs"
    )


@click.command("fsck")
@click.option("--verify", is_flag=True, help="Read every chunk and check its hash.")
@backend_options
def fsck(verify: bool, settings: Settings) -> None:
    """Check that every file's chunks exist (and are intact with --verify)."""
    with open_drive(settings) as drive, _progress(0, "checking") as bar:
        report = drive.fsck(verify=verify, progress=bar.update)
    click.echo(f"checked {report.chunks_checked} chunks")
    for key in report.missing:
        click.echo(f"MISSING chunk {key}")
    for key in report.corrupt:
        click.echo(f"CORRUPT chunk {key}")
    for manifest in report.bad_manifests:
        click.echo(f"BAD manifest {manifest} (chunks do not add up to its size)")
    for line in report.quota_mismatches:
        click.echo(f"QUOTA {line}")
    for name in report.affected_files:
        click.echo(f"DAMAGED {name}")
    if report.damaged:
        raise click.exceptions.Exit(1)
    click.echo("no damage found")


@click.group(cls=DriveGroup)
def db() -> None:
    """Database schema migrations."""


@db.command("upgrade")
@backend_options
def db_upgrade(settings: Settings) -> None:
    """Migrate the database to the newest schema."""
    database = Database(settings.resolved_db_url)
    try:
        before, after = upgrade(database)
    finally:
        database.dispose()
    click.echo(
        f"database at {after}" + (f" (was {before})" if before != after else " (already current)")
    )


COMMANDS: list[click.Command] = [
    user,
    token,
    import_,
    export,
    ls,
    versions_cmd,
    restore,
    trash,
    gc,
    fsck,
    db,
]
