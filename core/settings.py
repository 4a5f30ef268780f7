"""The typed settings of the core, loaded once at an entry point and passed down.

Sources, strongest first: explicit arguments (CLI flags), ``DRIVEGATE_*``
environment variables (nested with ``__``, e.g.
``DRIVEGATE_RETENTION__KEEP_ALL_DAYS``), a TOML file (``--config`` or
``DRIVEGATE_CONFIG``), then the defaults below. Unknown keys are refused in
every source, so a typo never passes silently.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from platformdirs import user_data_path
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from core.errors import InvalidRequest


def default_data_dir() -> Path:
    """The embedded default's data dir: the user's XDG data dir, i.e.
    ``$XDG_DATA_HOME/drivegate``, else ``~/.local/share/drivegate`` (for root
    ``/root/.local/share/drivegate``). It does not follow the current folder, so
    every command finds the same drive wherever it is run."""
    return user_data_path("drivegate")


class RetentionPolicy(BaseModel):
    """How long old versions are kept. The current version is never pruned."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_all_days: float = Field(default=30, ge=0, description="Keep every version this many days.")
    keep_daily_days: float = Field(
        default=365, ge=0, description="After that, keep one version per day up to this age."
    )
    keep_weekly: bool = Field(
        default=True, description="Beyond keep_daily_days, keep one per week."
    )
    max_versions: int = Field(default=1000, ge=1, description="Hard cap of versions per file.")


class Settings(BaseSettings):
    """Where the drive lives and how it behaves. Shared by every sub-command."""

    model_config = SettingsConfigDict(
        env_prefix="DRIVEGATE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Data directory (SQLite database, chunk dir).",
    )
    db_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///DATA_DIR/drivegate.db."
    )
    store_url: str | None = Field(
        default=None,
        description="Chunk store: file://DIR (default DATA_DIR/chunks) or "
        "s3://BUCKET/PREFIX?endpoint=http://HOST:PORT.",
    )
    s3_access_key: SecretStr | None = Field(default=None, description="S3 access key.")
    s3_secret_key: SecretStr | None = Field(default=None, description="S3 secret key.")
    trash_days: float = Field(
        default=30, ge=0, description="Days a deleted item stays in the trash."
    )
    gc_grace_seconds: float = Field(
        default=3600, ge=0, description="Unreferenced chunks younger than this are never collected."
    )
    upload_timeout_seconds: float = Field(
        default=900,
        gt=0,
        description="An upload silent this long is dead: gc frees its quota and chunks.",
    )
    lock_timeout_seconds: float = Field(
        default=3600, gt=0, description="Longest (and default) WebDAV lock timeout."
    )
    zstd_level: int = Field(default=1, ge=1, le=19, description="zstd level for stored chunks.")
    db_busy_timeout_seconds: float = Field(
        default=5,
        gt=0,
        le=600,
        description="SQLite: how long a write waits for another process's write lock "
        "before the request answers 503.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Web origins (https://host[:port]) besides the server's own that may "
        "send state-changing requests from a browser (CSRF guard, davserver.sameorigin).",
    )
    retention: RetentionPolicy = Field(default_factory=RetentionPolicy)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = settings_cls.model_config.get("toml_file") or os.environ.get(
            "DRIVEGATE_CONFIG"
        )
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(str(config_file))))
        return tuple(sources)

    @property
    def uses_data_dir(self) -> bool:
        """Whether the database or the chunk store lives in ``data_dir`` (a default URL)."""
        return self.db_url is None or self.store_url is None

    @property
    def resolved_db_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.data_dir / 'drivegate.db').absolute()}"

    @property
    def resolved_store_url(self) -> str:
        if self.store_url:
            return self.store_url
        return f"file://{(self.data_dir / 'chunks').absolute()}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; ``overrides`` whose value is None are treated as not given.

    Raises InvalidRequest with a readable message for a bad file or value.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    settings_cls: type[Settings] = Settings
    if config_file is not None:
        if not config_file.is_file():
            raise InvalidRequest(f"config file not found: {config_file}")
        config = SettingsConfigDict(**{**Settings.model_config, "toml_file": config_file})
        settings_cls = type("SettingsFromFile", (Settings,), {"model_config": config})
    try:
        return settings_cls(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidRequest(f"invalid settings: {problems}") from None
