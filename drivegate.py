"""The ``drivegate`` command: the sub-commands each package owns, loaded only when used.

A sub-command's package is imported when that command runs (or ``--help``
lists it), so ``drivegate mount`` loads the mount and nothing of the server:
no database, store or WebDAV library. On an install with only one part
(``pip install 'drivegate[mount]'``), the other part's commands say which
extra they need instead of failing on an import.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import click

FILES = ("import", "export", "ls", "versions", "restore", "trash")
PACKAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    # package whose COMMANDS it is: (the extra that installs its libraries, its command names)
    "core.cli": ("server", ("user", "token", "group", "share", *FILES, "gc", "fsck", "db")),
    "davserver.cli": ("server", ("serve", "lock")),
    "fusemount.cli": ("mount", ("mount", "umount", "pin", "unpin", "status")),
}


class MissingPart(click.Command):
    """Stands for a command whose package cannot be imported here: says which extra to install."""

    def __init__(self, name: str, extra: str, missing: str) -> None:
        self.message = (
            f"drivegate {name} needs the {extra} part, whose library {missing!r} is not "
            f"installed here: pip install 'drivegate[{extra}]'"
        )
        super().__init__(name, help=f"(not installed: needs drivegate[{extra}])")

    def invoke(self, ctx: click.Context) -> Any:
        raise click.ClickException(self.message)


class LazyGroup(click.Group):
    """The top-level group: knows every command's name, imports its package on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for _, names in PACKAGES.values() for name in names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for package, (extra, names) in PACKAGES.items():
            if cmd_name in names:
                return _load(package, extra, cmd_name)
        return None


def _load(package: str, extra: str, name: str) -> click.Command:
    try:
        module = importlib.import_module(package)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] in {"cdc", "runtime", *_OURS}:
            raise  # a bug of ours, not a missing library
        return MissingPart(name, extra, exc.name)
    commands: list[click.Command] = module.COMMANDS
    return next(command for command in commands if command.name == name)


_OURS = {package.split(".")[0] for package in PACKAGES}


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="drivegate")
def main(verbose: int) -> None:
    """drivegate: a self-hosted drive (WebDAV server and FUSE mount over one core)."""
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":
    main()
