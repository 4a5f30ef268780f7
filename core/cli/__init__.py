"""The core's sub-commands of ``drivegate``: users, tokens, groups, shares, import/export,
listing, versions, trash, gc, fsck and migrations.

Every command takes ``--data-dir``, ``--db-url``, ``--store-url`` and
``--config`` (also ``DRIVEGATE_*`` variables and a TOML file; see
``core.settings``). Any DriveError ends the command with a one-line message
and exit status 1.
"""

import click

from core.cli.common import DriveCommand, DriveGroup, backend_options, open_drive
from core.cli.files import export, import_, ls, restore, versions_cmd
from core.cli.groups import group
from core.cli.maintenance import db, fsck, gc
from core.cli.shares import share
from core.cli.trash import trash
from core.cli.users import token, user

__all__ = ["COMMANDS", "DriveCommand", "DriveGroup", "backend_options", "open_drive"]

COMMANDS: list[click.Command] = [
    user, token, group, share, import_, export, ls, versions_cmd, restore, trash, gc, fsck, db,
]  # fmt: skip
