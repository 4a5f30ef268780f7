"""The ``drivegate`` command: assembles the sub-commands each package owns."""

from __future__ import annotations

import logging

import click

from core.cli import COMMANDS, DriveGroup
from davserver import COMMANDS as DAV_COMMANDS
from fusemount import COMMANDS as MOUNT_COMMANDS


@click.group(cls=DriveGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="drivegate")
def main(verbose: int) -> None:
    """drivegate: a self-hosted drive (WebDAV server and FUSE mount over one core)."""
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


for command in [*COMMANDS, *DAV_COMMANDS, *MOUNT_COMMANDS]:
    main.add_command(command)


if __name__ == "__main__":
    main()
