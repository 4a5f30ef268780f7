"""`drivegate trash list|restore|purge`."""

from __future__ import annotations

import click
from humanfriendly import format_size

from core.cli.common import (
    DriveGroup,
    backend_options,
    open_drive,
    user_option,
    when,
)
from core.ids import NodeId
from core.settings import Settings


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
        click.echo(f"{entry.id:>8}  {when(entry.trashed_at):<19}  {entry.size:>12}  {name}")


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
