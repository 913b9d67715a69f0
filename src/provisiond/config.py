"""Settings, read once at start-up from the environment (prefix ``PROVISIOND_``).

Secrets are ``SecretStr`` so that they never show in a ``repr``, a log line or a traceback.
"""

from __future__ import annotations

import ipaddress
import json
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# An app's answer may hold this much (decompressed) unless the operator says otherwise: a
# ListResponse page of 100 users with their groups is well under 1 MB.
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024


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
    scim_source_edits: Literal["warn", "refuse"] = Field(
        default="warn",
        description="An admin edit of an attribute a SCIM client owns: warned of, or refused.",
    )
    run_worker: bool = Field(default=True, description="Run a worker inside `serve`.")
    scheduler_tick_seconds: float = Field(
        default=60.0, gt=0, le=3600,
        description="How often a worker's scheduler looks for apps due a scheduled full sync.",
    )
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
    event_retention_days: int = Field(
        default=365, ge=0, le=36_500,
        description="How long the activity log keeps events (0: for ever). On PostgreSQL a "
        "month is dropped whole once all of it is older, so events stay up to a month longer.",
    )
    # Ports of connector targets that are reached without TLS verification are never
    # configured here: TLS is always verified.
    # The connector destination policy (connectors/destinations.py, docs/security.md): which
    # addresses app requests may connect to. Networks are CIDRs, comma-separated in the env.
    connector_allow_loopback: bool = Field(
        default=False, description="Let connectors reach 127.0.0.0/8 and ::1 (demo, tests)."
    )
    connector_allowed_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="If set, connectors reach only these networks."
    )
    connector_denied_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Networks connectors never reach, whatever else says."
    )
    connector_max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES,
        ge=65_536,
        description="The most an app's answer may hold, counted decompressed.",
    )

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError(
                "PROVISIOND_DATABASE_URL must be a sqlite:// or postgresql+psycopg:// URL"
            )
        return value

    @field_validator("connector_allowed_networks", "connector_denied_networks", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if isinstance(value, str):  # from the environment: a JSON list or comma-separated
            text = value.strip()
            value = (
                json.loads(text)
                if text.startswith("[")
                else [part for part in (p.strip() for p in text.split(",")) if part]
            )
        if isinstance(value, list):
            for network in value:
                try:
                    ipaddress.ip_network(str(network), strict=False)
                except ValueError as exc:
                    raise ValueError(f"{network!r} is not a network (CIDR): {exc}") from None
        return value

    @cached_property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'provisiond.db').resolve()}"
