"""Settings refuse configurations that are unsafe in production or cannot work at all."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.core.settings import DEV_AUTH_SECRET, Settings

SECRET = "a-production-secret-of-at-least-32-characters"
#: What production needs for /metrics besides: a token, or an explicit opening.
METRICS: dict[str, Any] = {"metrics_token": "a-metrics-token-for-the-scraper"}
OIDC: dict[str, Any] = {
    "auth_mode": "oidc",
    "oidc_issuer": "https://tenant.auth0.com/",
    "oidc_audience": "https://api.example.com",
}


def make(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"auth_secret": DEV_AUTH_SECRET, **OIDC, **METRICS}, "AUTH_SECRET"),
        ({"auth_secret": SECRET, **METRICS}, "AUTH_MODE=local"),
        ({"auth_secret": SECRET, "cors_origins": "*", **OIDC, **METRICS}, "CORS"),
        ({"auth_secret": SECRET, **OIDC}, "METRICS_TOKEN"),
    ],
)
def test_production_refuses_unsafe_settings(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make(environment="production", **values)


def test_production_accepts_safe_settings() -> None:
    assert make(environment="production", auth_secret=SECRET, **OIDC, **METRICS).auth_mode == "oidc"
    local = make(
        environment="production",
        auth_secret=SECRET,
        allow_local_auth_in_production=True,
        metrics_public=True,
    )
    assert local.auth_mode == "local"
    no_credentials = make(
        environment="production",
        auth_secret=SECRET,
        cors_origins="*",
        cors_allow_credentials=False,
        **OIDC,
        **METRICS,
    )
    assert no_credentials.cors_origins == ["*"]


def test_development_defaults_to_local_auth() -> None:
    assert make().auth_mode == "local"


def test_oidc_needs_issuer_and_audience() -> None:
    with pytest.raises(ValidationError, match="OIDC_ISSUER"):
        make(auth_mode="oidc", oidc_issuer="https://tenant.auth0.com/")


@pytest.mark.parametrize("algorithms", ["HS256", "RS256,HS256", "none", ""])
def test_only_asymmetric_algorithms_may_be_pinned(algorithms: str) -> None:
    with pytest.raises(ValidationError, match="OIDC_ALGORITHMS"):
        make(oidc_algorithms=algorithms, **OIDC)


def test_algorithms_parse_from_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OIDC_ALGORITHMS", "RS256, ES256")
    assert make(**OIDC).oidc_algorithms == ["RS256", "ES256"]


def test_idempotency_keys_live_at_least_a_day() -> None:
    with pytest.raises(ValidationError):
        make(idempotency_ttl_s=3600)


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValidationError):
        make(auth_secret="short")


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    settings = make()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert (settings.port, settings.db_pool_size, settings.host) == (9001, 7, "127.0.0.1")
    monkeypatch.setenv("CORS_ORIGINS", '["https://c.example"]')
    assert make().cors_origins == ["https://c.example"]


def test_env_example_is_a_valid_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """`.env.example` stays in step with the settings: every variable it sets is known and valid."""
    from pathlib import Path

    from app.core.settings import REPO_ROOT

    example = Path(REPO_ROOT / ".env.example")
    names = {
        line.split("=", 1)[0].strip()
        for line in example.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    known = {name.upper() for name in Settings.model_fields}
    assert names <= known, f"unknown variables in .env.example: {sorted(names - known)}"
    for name in list(known):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=example)
    assert settings.auth_mode == "local"
    assert settings.llm_provider == "simulated"
