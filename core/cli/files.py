"""Moving files in and out of a drive and looking at them: import, export, ls, versions, restore."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import click

from core.cli.common import DriveCommand, backend_options, open_drive, user_option, when
from core.cli.progress import Transfer, progress_option
from core.drive import Drive
from core.errors import NotFound
from core.ids import UserId
from core.names import join_path, split_path
from core.records import NodeInfo
from core.settings import Settings


def _walk_local(src: Path) -> Iterator[tuple[Path, str]]:
    """(local path, relative drive path) of every folder and regular file, parents first."""
    for folder, dirs, files in os.walk(src):
        dirs.sort()
        base = Path(folder)
        for name in dirs:
            yield base / name, (base / name).relative_to(src).as_posix()
        for name in sorted(files):
            yield base / name, (base / name).relative_to(src).as_posix()


@click.command("import", cls=DriveCommand)
@click.argument("src_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("dest_path")
@user_option
@click.option("--force", is_flag=True, help="Upload files even when size and mtime already match.")
@progress_option
@backend_options
def import_(  # noqa: PLR0917 (click passes options as arguments)
    src_dir: Path,
    dest_path: str,
    user_name: str,
    force: bool,
    progress_seconds: float,
    settings: Settings,
) -> None:
    """Copy local folder SRC_DIR into the drive at DEST_PATH (created if missing)."""
    entries = list(_walk_local(src_dir))
    sizes = [path.stat().st_size for path, _ in entries if path.is_file() and not path.is_symlink()]
    files = skipped = 0
    transfer = Transfer("import", len(sizes), sum(sizes), interval=progress_seconds)
    with open_drive(settings) as drive, transfer:
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
                transfer.add(stat.st_size)
            else:
                with open(local, "rb", buffering=0) as handle:
                    drive.write(
                        uid,
                        target,
                        transfer.counting(handle),
                        expected_size=stat.st_size,
                        mtime_ns=stat.st_mtime_ns,
                        origin="import",
                    )
                files += 1
            transfer.file_done()
    click.echo(
        f"imported {files} files into {base}" + (f", {skipped} unchanged" if skipped else "")
    )


def _unchanged(drive: Drive, user: UserId, path: str, size: int, mtime_ns: int) -> bool:
    try:
        node = drive.stat(user, path)
    except NotFound:
        return False
    return not node.is_folder and node.size == size and node.mtime_ns == mtime_ns


@click.command("export", cls=DriveCommand)
@click.argument("src_path")
@click.argument("dest_dir", type=click.Path(file_okay=False, path_type=Path))
@user_option
@progress_option
@backend_options
def export(
    src_path: str, dest_dir: Path, user_name: str, progress_seconds: float, settings: Settings
) -> None:
    """Copy SRC_PATH (a file or folder of the drive) into local folder DEST_DIR."""
    with open_drive(settings) as drive:
        uid = drive.user(user_name).id
        top = drive.stat(uid, src_path)
        plan = list(_walk_drive(drive, uid, join_path(split_path(src_path)), top))
        sizes = [node.size for _, node in plan if not node.is_folder]
        root = dest_dir / (top.name or "")
        with Transfer("export", len(sizes), sum(sizes), interval=progress_seconds) as transfer:
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
                    transfer=transfer,
                )
                transfer.file_done()
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


def _download(
    drive: Drive, user: UserId, node: NodeInfo, local: Path, path: str, *, transfer: Transfer
) -> None:
    partial = local.with_name(local.name + ".drivegate-partial")
    with drive.open_read(user, path) as reader, open(partial, "wb") as out:
        while block := reader.read(4 * 1024 * 1024):
            out.write(block)
            transfer.add(len(block))
    os.replace(partial, local)
    os.utime(local, ns=(node.mtime_ns, node.mtime_ns))


@click.command("ls", cls=DriveCommand)
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
            click.echo(f"{child.size:>14} {when(child.mtime)} {version:>5}  {name}")
        else:
            click.echo(name)


@click.command("versions", cls=DriveCommand)
@click.argument("path")
@user_option
@backend_options
def versions_cmd(path: str, user_name: str, settings: Settings) -> None:
    """List the versions of a file: when each was saved, and the modification time
    it carries (a restore is saved and modified now; the old version keeps its own)."""
    with open_drive(settings) as drive:
        rows = drive.versions(drive.user(user_name).id, path)
    click.echo(
        f"{'VERSION':>7}  {'SAVED':<19}  {'MODIFIED':<19}  {'SIZE':>14}  {'ORIGIN':<8} AUTHOR"
    )
    for row in rows:
        mark = "*" if row.is_current else " "
        click.echo(
            f"{row.number:>6}{mark}  {when(row.created_at):<19}  {when(row.mtime_ns / 1e9):<19}  "
            f"{row.size:>14}  {row.origin:<8} {row.author or '-'}"
        )


@click.command("restore", cls=DriveCommand)
@click.argument("path")
@click.option("--version", "number", type=int, required=True, help="Version number to restore.")
@user_option
@backend_options
def restore(path: str, number: int, user_name: str, settings: Settings) -> None:
    """Make an old version of a file current again (as a new version)."""
    with open_drive(settings) as drive:
        info = drive.restore_version(drive.user(user_name).id, path, number)
    click.echo(f"restored version {number} of {path} as version {info.version_number}")
