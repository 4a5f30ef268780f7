"""Keeping a drive healthy: gc, fsck and schema migrations."""

from __future__ import annotations

import click
from humanfriendly import format_size

from core.cli.common import (
    DriveCommand,
    DriveGroup,
    backend_options,
    open_drive,
    progress,
    require_data_dir,
)
from core.db.engine import Database
from core.db.migrate import upgrade
from core.settings import Settings


@click.command("gc", cls=DriveCommand)
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


@click.command("fsck", cls=DriveCommand)
@click.option(
    "--verify",
    is_flag=True,
    help="Read every chunk and check its hash; check whole-file sums, fill in unknown ones.",
)
@backend_options
def fsck(verify: bool, settings: Settings) -> None:
    """Check that every file's chunks exist (and are intact with --verify)."""
    with open_drive(settings) as drive, progress(0, "checking") as bar:
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
    for manifest in report.bad_sums:
        click.echo(f"BAD SUM manifest {manifest} (its content has another SHA-256)")
    for name in report.affected_files:
        click.echo(f"DAMAGED {name}")
    if report.sums_filled:
        click.echo(f"filled in {report.sums_filled} unknown whole-file SHA-256 sums")
    if report.sums_unknown:
        hint = "" if verify else " (--verify fills them in)"
        click.echo(f"whole-file SHA-256 unknown for {report.sums_unknown} manifests{hint}")
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
    require_data_dir(settings)
    database = Database(settings.resolved_db_url)
    try:
        before, after = upgrade(database)
    finally:
        database.dispose()
    click.echo(
        f"database at {after}" + (f" (was {before})" if before != after else " (already current)")
    )
