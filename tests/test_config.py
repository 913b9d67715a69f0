from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from provisiond.config import Settings
from provisiond.store import keys


def test_the_secret_key_never_shows() -> None:
    settings = Settings(secret_key="very-secret-value")
    assert "very-secret-value" not in repr(settings)
    assert "very-secret-value" not in str(settings.model_dump())


def test_a_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    key = keys.load(Settings(data_dir=tmp_path)).primary
    assert keys.load(Settings(data_dir=tmp_path)).primary == key
    mode = stat.S_IMODE((tmp_path / "secret.key").stat().st_mode)
    assert mode == 0o600


def test_sqlite_is_the_default(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).effective_database_url.startswith("sqlite:///")


def test_an_unknown_database_is_refused() -> None:
    with pytest.raises(ValidationError, match="sqlite:// or postgresql"):
        Settings(database_url="mysql://localhost/x")
