"""What every core sub-command shares: the storage options, opening the drive
(refused when its data dir is missing), error handling, size parsing and
password input."""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from core.drive import Drive
from core.errors import DriveError
from core.settings import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])


class _DriveErrorsAsMessages(click.Command):
    """Turns a DriveError into a one-line message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DriveError as exc:
            raise click.ClickException(str(exc)) from None


class DriveCommand(_DriveErrorsAsMessages):
    """A core command: a DriveError ends it with a one-line message."""


class DriveGroup(_DriveErrorsAsMessages, click.Group):
    """A group of core commands: a DriveError ends any of them with a one-line message."""


def _help(field: str) -> str:
    return Settings.model_fields[field].description or ""


def backend_options(func: F) -> F:
    """Add the storage options to a command and pass it ``settings``."""

    @click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help=_help("data_dir") + " [env DRIVEGATE_DATA_DIR; default $XDG_DATA_HOME/drivegate, i.e. "
        "~/.local/share/drivegate]",
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


def require_data_dir(settings: Settings) -> None:
    """Refuse (one line, exit 1) when the drive's data dir does not exist, naming it
    and the ways to point elsewhere, so that a command run with the wrong settings
    never creates a new empty drive. Nothing is created."""
    if not settings.uses_data_dir or settings.data_dir.is_dir():
        return
    raise click.ClickException(
        f"no drive at {settings.data_dir.absolute()} (the data dir does not exist). "
        "Point at yours with --data-dir DIR, the DRIVEGATE_DATA_DIR variable or data_dir in "
        "the config file (--config FILE or DRIVEGATE_CONFIG); "
        "'drivegate serve' or 'drivegate user add' starts a new drive there."
    )


@contextmanager
def open_drive(settings: Settings, *, create: bool = False) -> Iterator[Drive]:
    """Open the drive; with ``create`` a missing data dir is made (a new drive),
    without it the command stops (``require_data_dir``)."""
    if not create:
        require_data_dir(settings)
    with Drive.open(settings) as drive:
        yield drive


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on standard input")
        return password
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def progress(total: int, label: str) -> Any:
    return click.progressbar(
        length=total, label=label, file=sys.stderr, show_pos=False, show_percent=True, show_eta=True
    )


def when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))
