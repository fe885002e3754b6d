"""The operating settings: log level and format, metrics guard, tracing switch, and how a bad
configuration is reported."""

from __future__ import annotations

import io
import socket
from typing import Any

import pytest
from pydantic import ValidationError

from app.core.config_errors import CONFIG_EXIT, describe, exit_on_invalid
from app.core.settings import Settings


def make(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.mark.parametrize("given", ["warning", "Warning", " WARNING "])
def test_log_level_takes_any_case(given: str) -> None:
    assert make(log_level=given).log_level == "WARNING"


def test_log_format_defaults_to_json_in_production_only() -> None:
    assert make().effective_log_format == "text"
    production = make(
        environment="production",
        auth_secret="a-production-secret-of-at-least-32-characters",
        allow_local_auth_in_production=True,
        metrics_public=True,
    )
    assert production.effective_log_format == "json"
    assert make(log_format="JSON").effective_log_format == "json"


def test_blank_tracing_endpoint_means_off_and_node_name_defaults_to_the_host() -> None:
    assert make(otel_exporter_otlp_endpoint=" ").otel_exporter_otlp_endpoint is None
    assert make().node_name == socket.gethostname()


def test_a_bad_configuration_is_one_line_per_variable_with_secrets_masked() -> None:
    with pytest.raises(ValidationError) as caught:
        make(
            port="abc",
            auth_secret="tiny-s3cr3t",
            metrics_token="short",
            database_url=123,
        )
    lines = describe(caught.value)
    assert len(lines) == 4, lines
    assert any(line.startswith("PORT='abc': ") for line in lines)
    assert any(line.startswith("AUTH_SECRET=<secret, 11 characters>: ") for line in lines)
    assert any(line.startswith("METRICS_TOKEN=<secret, 5 characters>: ") for line in lines)
    assert not [line for line in lines if "tiny-s3cr3t" in line or "short'" in line]


def test_the_report_ends_the_process_with_status_2() -> None:
    with pytest.raises(ValidationError) as caught:
        make(db_pool_size=0)
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        exit_on_invalid(caught.value, out)
    assert exited.value.code == CONFIG_EXIT
    assert "DB_POOL_SIZE='0': Input should be greater than or equal to 1" in out.getvalue()


def test_gc_thresholds_are_a_json_list_of_positive_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    assert make().gc_thresholds == (20_000, 50, 100)
    monkeypatch.setenv("GC_THRESHOLDS", "[700, 10, 10]")
    assert make().gc_thresholds == (700, 10, 10)
    with pytest.raises(ValidationError, match="gc_thresholds"):
        make(gc_thresholds=(0, 10, 10))  # 0 would turn automatic collection off
