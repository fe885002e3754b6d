"""Runtime configuration, read from the environment and an optional `.env` file."""

from __future__ import annotations

import socket
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PositiveInt, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: The development secret shipped in the code. Production refuses to start with it.
DEV_AUTH_SECRET = "dev-only-secret-change-me-before-deploying-0123456789"

#: Signature algorithms OIDC mode may pin: asymmetric only, so a public key can never be misused
#: as an HMAC secret (the classic algorithm-confusion attack).
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)

#: Idempotency keys are kept at least this long (the IETF draft and Stripe both use 24 hours).
MIN_IDEMPOTENCY_TTL_S = 24 * 3600

#: Repository root: `backend/app/core/settings.py` → three parents up from `app/`.
REPO_ROOT = Path(__file__).resolve().parents[3]


class Settings(BaseSettings):
    """Every knob the service reads. Names map 1:1 to upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_file=(REPO_ROOT / ".env", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    environment: Literal["development", "test", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Any case: `warning` is `WARNING`."
    )
    log_format: Literal["json", "text"] | None = Field(
        default=None,
        description="`json`: one JSON object per line (the default in production); `text`: for "
        "a terminal (the default elsewhere).",
    )
    node_name: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        max_length=255,
        description="This node's name in logs and `/health/live` (default: the host name).",
    )

    metrics_token: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="Bearer token `GET /metrics` requires. Production needs it unless "
        "METRICS_PUBLIC=true.",
    )
    metrics_public: bool = Field(
        default=False, description="Serve `/metrics` without a token, even in production."
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP collector, e.g. http://localhost:4318; unset: no tracing at all.",
    )
    otel_service_name: str = Field(default="agent-stack", min_length=1)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL; unset means an embedded server under EMBEDDED_PG_DIR.",
    )
    embedded_pg_dir: Path = REPO_ROOT / ".data" / "postgres"
    db_pool_size: int = Field(default=10, ge=1, le=500)
    # 0: under a burst, waiting a moment for a pooled connection costs less than opening one
    # for the burst and closing it right after (measured by `make bench`: with 32 clients and an
    # overflow of 10, the app opened over a hundred connections a second).
    db_max_overflow: int = Field(default=0, ge=0, le=500)
    # Long enough to absorb a burst (1,000 reply starts at once on one worker, `make bench`); an
    # unreachable database still answers 503 after DB_CONNECT_TIMEOUT_S, not this.
    db_pool_timeout_s: float = Field(default=10.0, gt=0)
    db_connect_timeout_s: float = Field(default=3.0, gt=0)
    db_statement_timeout_ms: int = Field(default=15_000, ge=0)
    db_pool_recycle_s: int = Field(default=1800, ge=1)

    auth_mode: Literal["local", "oidc"] = "local"
    allow_local_auth_in_production: bool = Field(
        default=False, description="Let ENVIRONMENT=production run with AUTH_MODE=local."
    )
    auth_secret: str = Field(default=DEV_AUTH_SECRET, min_length=32)
    auth_issuer: str = "agent-stack-local"
    auth_audience: str = "agent-stack"
    auth_leeway_s: int = Field(default=30, ge=0, le=300)
    auth_token_ttl_s: int = Field(default=24 * 3600, ge=60)

    oidc_issuer: str | None = Field(
        default=None, description="Issuer URL, e.g. https://TENANT.auth0.com/ (with the slash)."
    )
    oidc_audience: str | None = Field(
        default=None, description="The API identifier tokens must be issued for (`aud`)."
    )
    oidc_jwks_url: str | None = Field(
        default=None,
        description="JWKS URL; unset means `jwks_uri` from the issuer's openid-configuration.",
    )
    oidc_algorithms: Annotated[list[str], NoDecode] = ["RS256"]
    oidc_email_claim: str = Field(
        default="email", description="Claim holding the e-mail (Auth0: a namespaced claim)."
    )
    oidc_jwks_ttl_s: int = Field(default=600, ge=10, le=86_400)
    oidc_jwks_refresh_interval_s: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="Minimum time between two JWKS fetches caused by unknown key ids.",
    )
    oidc_http_timeout_s: float = Field(default=3.0, gt=0, le=30)
    oidc_client_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="The chat page's client id at the provider (a public client: Authorization "
        "Code with PKCE, no secret). Unset: the page cannot sign in in `oidc` mode.",
    )

    idempotency_ttl_s: int = Field(default=MIN_IDEMPOTENCY_TTL_S, ge=MIN_IDEMPOTENCY_TTL_S)
    idempotency_lock_timeout_s: int = Field(default=60, ge=1, le=3600)

    max_sessions_per_user: int = Field(default=10_000, ge=1)
    max_messages_per_session: int = Field(default=10_000, ge=1)
    user_daily_token_limit: int | None = Field(
        default=None,
        ge=1,
        description="Input plus output tokens a user's replies may use per UTC day; unset: no "
        "limit. A reply that would start at or over it answers 429.",
    )

    search_config: str = Field(
        default="simple",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL text search configuration of full-text search (`simple`: no "
        "stemming, no stop words, right for mixed languages). Applied by the migration that "
        "builds the search columns, and used by every query.",
    )

    retention_days: int | None = Field(
        default=None,
        ge=1,
        le=36_500,
        description="Sessions idle longer than this are deleted with their messages; unset: "
        "kept forever. Expired temporary sessions are deleted either way.",
    )
    retention_sweep_s: float = Field(
        default=300.0, gt=0, description="How often the retention sweep runs."
    )
    retention_batch_size: int = Field(
        default=200, ge=1, le=10_000, description="Sessions deleted per short transaction."
    )
    retention_pause_ms: int = Field(
        default=50, ge=0, le=60_000, description="Pause between two batches of the sweep."
    )
    import_max_messages: int = Field(
        default=10_000,
        ge=1,
        le=100_000,
        description="Most messages `POST /api/sessions/import` takes (413 beyond); never more "
        "than MAX_MESSAGES_PER_SESSION.",
    )
    import_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Largest body `POST /api/sessions/import` takes (413 beyond); other routes "
        "keep MAX_BODY_BYTES.",
    )
    llm_provider: Literal["simulated", "openai"] = Field(
        default="simulated",
        description="`openai`: any OpenAI-compatible Chat Completions server; `simulated`: a "
        "local stand-in that streams a deterministic reply built from the prompt.",
    )
    llm_base_url: str | None = Field(
        default=None, description="e.g. http://localhost:11434/v1; unset: api.openai.com."
    )
    llm_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"
    llm_system_prompt: str | None = None
    llm_max_output_tokens: int | None = Field(default=None, ge=1)
    llm_connect_timeout_s: float = Field(default=5.0, gt=0)
    llm_read_timeout_s: float = Field(
        default=60.0, gt=0, description="Longest silence from the model, first token included."
    )
    llm_max_retries: int = Field(
        default=2, ge=0, le=10, description="Retries of a failed call, before its first token."
    )
    llm_context_chars: int = Field(
        default=32_000, ge=1, description="Budget of prior message text sent as context."
    )
    llm_context_messages: int = Field(default=50, ge=1, le=1000)

    simulated_tokens: int = Field(default=40, ge=1, le=100_000)
    simulated_delay_ms: float = Field(default=25.0, ge=0, le=60_000)

    # 1000 ms: each flush appends one row per reply, whose fixed cost in the write-ahead log is
    # about 200 bytes (the row's header, its key entry, its delete when the reply ends), on top
    # of about 2 bytes per byte of reply for the text (once in the rows, once in the message).
    # A typical model streams 50-100 tokens/s, some 200-400 bytes a second: the fixed cost adds
    # 0.5-1 byte of log per byte of reply at one second, 1-2 at half a second. `python -m bench
    # wal` (100 tokens/s of longer words): 2.63 bytes per byte, 2.97 at 500 ms. Followers in the
    # generating process get every token at once; only other processes see this interval (and
    # a crash loses at most this much text).
    reply_flush_ms: int = Field(
        default=1000, ge=10, le=10_000, description="How often streaming progress is persisted."
    )
    # 100 ms: ten updates a second per stream is as smooth as a reader needs, and under load it
    # halves the per-token work of fanning deltas out (measured by `make bench`). The first token
    # is never delayed.
    reply_coalesce_ms: int = Field(
        default=100,
        ge=0,
        le=5_000,
        description="Tokens arriving this soon after a delta share the next one (0: per token).",
    )
    # 2,000: up to 200 streams per process keep REPLY_COALESCE_MS's ten deltas a second; a
    # thousand get two each. Every event costs the same CPU whatever it carries, so without a cap
    # a crowd of streams starves the starts of new replies (`make bench` replies).
    reply_events_per_s: int = Field(
        default=2000,
        ge=0,
        description="Deltas a process sends per second across its streams before each "
        "stream's are spaced further apart (0: no cap). First tokens and ends are never held.",
    )
    # See app/core/collector.py: a collection every 20,000 net allocations instead of 700.
    gc_thresholds: tuple[PositiveInt, PositiveInt, PositiveInt] = Field(
        default=(20_000, 50, 100),
        description="The garbage collector's thresholds in a server process, as a JSON list "
        "(`[700, 10, 10]` is Python's own).",
    )
    reply_shutdown_grace_s: float = Field(
        default=5.0, ge=0, description="At shutdown, time for running replies to finish."
    )
    shutdown_drain_s: float = Field(
        default=0.0,
        ge=0,
        le=300,
        description="Behind a load balancer: at SIGTERM, how long readiness (`/health`) fails "
        "before the server stops listening (long enough for the balancer's checks to take the "
        "node out); then its event streams end without a final event, so clients reconnect to "
        "another node. 0 (one server): streams get their final event before closing.",
    )
    fleet_nodes: int = Field(
        default=3, ge=1, le=50, description="`make fleet`: how many nodes behind HAProxy."
    )
    reply_sweep_s: float = Field(
        default=30.0, gt=0, description="How often orphaned streaming replies are failed."
    )

    cors_origins: Annotated[list[str], NoDecode] = ["http://localhost:3000"]
    cors_allow_credentials: bool = True
    # 2 MiB: the largest valid request must fit. 100,000 characters of content, JSON-escaped as
    # surrogate pairs (`\ud83d\ude00`, 12 bytes each), are 1.2 MB; 1 MiB refused valid messages.
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_case_format(cls, value: object) -> object:
        return (value.strip().lower() or None) if isinstance(value, str) else value

    @field_validator(
        "otel_exporter_otlp_endpoint",
        "metrics_token",
        "oidc_client_id",
        "retention_days",
        "user_daily_token_limit",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """`OTEL_EXPORTER_OTLP_ENDPOINT=` in a .env file means "off", not "an empty URL"."""
        return (value.strip() or None) if isinstance(value, str) else value

    @property
    def effective_log_format(self) -> Literal["json", "text"]:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.environment == "production" else "text"

    @field_validator("oidc_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("oidc_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        refused = sorted(set(value) - ASYMMETRIC_ALGORITHMS)
        if refused or not value:
            allowed = ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
            raise ValueError(f"OIDC_ALGORITHMS must be a non-empty subset of {allowed}")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        """Accept a comma-separated string as well as a JSON list."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @field_validator("embedded_pg_dir")
    @classmethod
    def _anchor_to_repo(cls, value: Path) -> Path:
        """Relative paths are relative to the repository, wherever the command runs from."""
        return value if value.is_absolute() else REPO_ROOT / value

    @model_validator(mode="after")
    def _refuse_unsafe_configuration(self) -> Settings:
        if self.auth_mode == "oidc" and not (self.oidc_issuer and self.oidc_audience):
            raise ValueError("AUTH_MODE=oidc needs OIDC_ISSUER and OIDC_AUDIENCE")
        if self.environment != "production":
            return self
        if self.auth_secret == DEV_AUTH_SECRET:
            raise ValueError(
                "AUTH_SECRET is the development default; set a secret of your own "
                "before running with ENVIRONMENT=production"
            )
        if self.auth_mode == "local" and not self.allow_local_auth_in_production:
            raise ValueError(
                "AUTH_MODE=local signs tokens with a shared secret; use AUTH_MODE=oidc in "
                "production, or set ALLOW_LOCAL_AUTH_IN_PRODUCTION=true if you really mean it"
            )
        if "*" in self.cors_origins and self.cors_allow_credentials:
            raise ValueError(
                "CORS_ORIGINS=* with CORS_ALLOW_CREDENTIALS=true lets any web site make "
                "credentialed calls; list the origins or set CORS_ALLOW_CREDENTIALS=false"
            )
        if self.metrics_token is None and not self.metrics_public:
            raise ValueError(
                "/metrics needs a METRICS_TOKEN (at least 16 characters) in production, or "
                "METRICS_PUBLIC=true if only your scraper can reach it"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
