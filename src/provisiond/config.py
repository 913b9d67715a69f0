"""Settings, read once at start-up from the environment (prefix ``PROVISIOND_``).

Secrets are ``SecretStr`` so that they never show in a ``repr``, a log line or a traceback.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROVISIOND_", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="Where the SQLite file and key live.")
    database_url: str = Field(default="", description="SQLAlchemy URL; a SQLite file by default.")
    secret_key: SecretStr | None = Field(
        default=None, description="Key that encrypts connector credentials at rest."
    )
    old_secret_keys: SecretStr | None = Field(
        default=None,
        description="Earlier keys, comma separated: they open credentials, never seal them "
        "(while `provisiond keys rotate` moves everything to the current key).",
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    run_worker: bool = Field(default=True, description="Run a worker inside `serve`.")
    task_max_attempts: int = Field(default=6, ge=1, le=50)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=900.0, gt=0)
    http_timeout_seconds: float = Field(default=10.0, gt=0)
    worker_timeout_seconds: float = Field(
        default=30.0, ge=1, le=3600,
        description="A worker silent this long is taken for dead: its tasks go back to the queue.",
    )
    worker_drain_seconds: float = Field(
        default=20.0, ge=0, le=3600,
        description="On SIGTERM, how long a worker finishes its tasks before giving them back.",
    )
    # Ports of connector targets that are reached without TLS verification are never
    # configured here: TLS is always verified.

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError(
                "PROVISIOND_DATABASE_URL must be a sqlite:// or postgresql+psycopg:// URL"
            )
        return value

    @cached_property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'provisiond.db').resolve()}"
