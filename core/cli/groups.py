"""`drivegate group …`: groups of users and their members (rules: ``core.groups``)."""

from __future__ import annotations

import click

from core.cli.common import DriveGroup, backend_options, open_drive
from core.settings import Settings


@click.group("group", cls=DriveGroup)
def group() -> None:
    """Manage groups of users (to share with many at once)."""


@group.command("add")
@click.argument("name")
@backend_options
def group_add(name: str, settings: Settings) -> None:
    """Create the empty group NAME."""
    with open_drive(settings) as drive:
        drive.add_group(name)
    click.echo(f"created group {name}")


@group.command("list")
@backend_options
def group_list(settings: Settings) -> None:
    """List groups with their members."""
    with open_drive(settings) as drive:
        rows = drive.list_groups()
    click.echo(f"{'NAME':<24} MEMBERS")
    for info in rows:
        click.echo(f"{info.name:<24} {', '.join(info.members) or '-'}")


@group.command("remove")
@click.argument("name")
@backend_options
def group_remove(name: str, settings: Settings) -> None:
    """Remove the group NAME (its members stay users, only the group goes)."""
    with open_drive(settings) as drive:
        drive.remove_group(name)
    click.echo(f"removed group {name}")


@group.group("member", cls=DriveGroup)
def member() -> None:
    """Add users to a group or take them out (all of them, or none on an error)."""


@member.command("add")
@click.argument("group_name", metavar="GROUP")
@click.argument("users", metavar="USER...", nargs=-1, required=True)
@backend_options
def member_add(group_name: str, users: tuple[str, ...], settings: Settings) -> None:
    """Add each USER to GROUP (a member already stays one); an unknown user adds nobody."""
    with open_drive(settings) as drive:
        info = drive.add_group_members(group_name, users)
    click.echo(f"{info.name}: {', '.join(info.members)}")


@member.command("remove")
@click.argument("group_name", metavar="GROUP")
@click.argument("users", metavar="USER...", nargs=-1, required=True)
@backend_options
def member_remove(group_name: str, users: tuple[str, ...], settings: Settings) -> None:
    """Take each USER out of GROUP; an unknown user or a non-member removes nobody."""
    with open_drive(settings) as drive:
        info = drive.remove_group_members(group_name, users)
    click.echo(f"{info.name}: {', '.join(info.members) or '(no members)'}")
