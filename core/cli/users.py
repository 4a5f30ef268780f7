"""`drivegate user …` and `drivegate token …`."""

from __future__ import annotations

import click
from humanfriendly import format_size

from core.cli.common import (
    DriveGroup,
    backend_options,
    open_drive,
    read_password,
    user_option,
)
from core.settings import Settings
from runtime.sizes import SizeParam


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
    with open_drive(settings, create=True) as drive:
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


@token.command("revoke")
@click.argument("name")
@user_option
@backend_options
def token_revoke(name: str, user_name: str, settings: Settings) -> None:
    """Remove the app tokens called NAME: they stop working at once, on every server."""
    with open_drive(settings) as drive:
        removed = drive.revoke_token(user_name, name)
    if not removed:
        raise click.ClickException(f"{user_name} has no app token called {name!r}")
    click.echo(f"revoked {removed} app token(s) called {name!r} of {user_name}")
