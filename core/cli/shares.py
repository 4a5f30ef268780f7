"""`drivegate share …`: grants of a node to a user or a group (rules: ``core.shares``).

Every command acts as ``--user``, with exactly that user's rights: what they
may share, update, remove or see is what the sync API would allow them. The
table's PATH is the node's path in its owner's drive (OWNER): the CLI is the
server operator's, who may see every drive anyway.
"""

from __future__ import annotations

from collections.abc import Iterable

import click

from core.access import ROLES
from core.cli.common import DriveGroup, backend_options, open_drive, user_option
from core.records import ShareInfo
from core.settings import Settings

ROLE = click.Choice(sorted(ROLES))
COLUMNS = ("PATH", "OWNER", "WITH", "ROLE", "RESHARE", "BY")


def grantee_options(func: click.decorators.FC) -> click.decorators.FC:
    """``--with USER`` or ``--group GROUP`` (the core refuses neither and both)."""
    func = click.option("--group", "group_name", help="Share with this group.")(func)
    return click.option("--with", "with_user", help="Share with this user.")(func)


@click.group("share", cls=DriveGroup)
def share() -> None:
    """Share files and folders with users and groups (viewer or editor)."""


@share.command("add")
@click.argument("path")
@user_option
@grantee_options
@click.option("--role", type=ROLE, default="viewer", show_default=True,
              help="viewer: read; editor: also write, rename, delete.")  # fmt: skip
@click.option("--reshare", is_flag=True, help="Let the recipient share it onward.")
@backend_options
def share_add(  # noqa: PLR0917 (click passes options as arguments)
    path: str,
    user_name: str,
    with_user: str | None,
    group_name: str | None,
    role: str,
    reshare: bool,
    settings: Settings,
) -> None:
    """Share PATH of --user's drive with a user (--with) or a group (--group)."""
    with open_drive(settings) as drive:
        uid = drive.user(user_name).id
        info = drive.share(uid, path, user=with_user, group=group_name, role=role, reshare=reshare)
    click.echo(f"shared {info.path} with {_grantee(info)} as {_role(info)}")


@share.command("update")
@click.argument("path")
@user_option
@grantee_options
@click.option("--role", type=ROLE, default=None, help="The new role (default: unchanged).")
@click.option("--reshare/--no-reshare", default=None,
              help="Allow or forbid sharing onward (default: unchanged).")  # fmt: skip
@backend_options
def share_update(  # noqa: PLR0917 (click passes options as arguments)
    path: str,
    user_name: str,
    with_user: str | None,
    group_name: str | None,
    role: str | None,
    reshare: bool | None,
    settings: Settings,
) -> None:
    """Change the role or reshare right of a share --user made (or of one on their node)."""
    with open_drive(settings) as drive:
        uid = drive.user(user_name).id
        info = drive.update_share(
            uid, path, user=with_user, group=group_name, role=role, reshare=reshare
        )
    click.echo(f"{info.path} is shared with {_grantee(info)} as {_role(info)}")


@share.command("remove")
@click.argument("path")
@user_option
@grantee_options
@backend_options
def share_remove(
    path: str, user_name: str, with_user: str | None, group_name: str | None, settings: Settings
) -> None:
    """Revoke a share --user made (or one on their node); it ends at the grantee's next request."""
    with open_drive(settings) as drive:
        uid = drive.user(user_name).id
        drive.unshare(uid, path, user=with_user, group=group_name)
    grantee = f"user {with_user}" if with_user is not None else f"group {group_name}"
    click.echo(f"{path} is no longer shared with {grantee}")


@share.command("list")
@click.argument("path", required=False)
@user_option
@backend_options
def share_list(path: str | None, user_name: str, settings: Settings) -> None:
    """Without PATH: what --user shares and with whom (and others' shares of their
    nodes). With PATH: who has access to PATH, by the shares on it and above it."""
    with open_drive(settings) as drive:
        uid = drive.user(user_name).id
        rows = drive.shares_given(uid) if path is None else drive.shares_of(uid, path)
    _table(rows)


@share.command("received")
@user_option
@backend_options
def share_received(user_name: str, settings: Settings) -> None:
    """What is shared with --user, directly or through one of their groups."""
    with open_drive(settings) as drive:
        rows = drive.shares_received(drive.user(user_name).id)
    _table(rows)


def _table(rows: Iterable[ShareInfo]) -> None:
    lines = [COLUMNS] + [
        (info.path, info.owner, _grantee(info), info.role, "yes" if info.reshare else "no",
         info.granted_by)
        for info in rows
    ]  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    for line in lines:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def _grantee(info: ShareInfo) -> str:
    return info.user if info.user is not None else f"group:{info.group}"


def _role(info: ShareInfo) -> str:
    return info.role + (" (may reshare)" if info.reshare else "")
