from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.core.settings import DEV_AUTH_SECRET, Settings


def test_production_refuses_the_development_secret() -> None:
    with pytest.raises(ValidationError, match="AUTH_SECRET is the development default"):
        Settings(_env_file=None, environment="production", auth_secret=DEV_AUTH_SECRET)
    ok = Settings(_env_file=None, environment="production", auth_secret="s" * 40)
    assert ok.environment == "production"


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, auth_secret="short")


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    settings = Settings(_env_file=None)
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert (settings.port, settings.db_pool_size, settings.host) == (9001, 7, "127.0.0.1")
    monkeypatch.setenv("CORS_ORIGINS", '["https://c.example"]')
    assert Settings(_env_file=None).cors_origins == ["https://c.example"]
