"""The reply service's reports turned into metrics and one log line at each end of a reply.

The lines carry ids, timings, token counts and the outcome; never the prompt, the reply's text
or anything from the token.
"""

from __future__ import annotations

import logging

from app.core import metrics
from app.domain.telemetry import ReplyReport

log = logging.getLogger("agent_stack.replies")


class ReplyTelemetry:
    def __init__(self, model: str) -> None:
        self.model = model

    def started(self, message_id: int) -> None:
        metrics.REPLIES_STARTED.labels(self.model).inc()
        metrics.REPLIES_ACTIVE.inc()
        log.info(
            "reply %d started (model %s)",
            message_id,
            self.model,
            extra={"event": "reply.start", "message_id": message_id, "model": self.model},
        )

    def ended(self, report: ReplyReport) -> None:
        metrics.REPLIES_ACTIVE.dec()
        metrics.REPLIES_ENDED.labels(self.model, report.outcome).inc()
        metrics.REPLY_DURATION.labels(self.model).observe(report.duration_s)
        if report.time_to_first_token_s is not None:
            metrics.REPLY_TTFT.labels(self.model).observe(report.time_to_first_token_s)
        metrics.REPLY_TOKENS.labels(self.model, "input").inc(report.input_tokens)
        metrics.REPLY_TOKENS.labels(self.model, "output").inc(report.output_tokens)
        ttft_ms = (
            round(report.time_to_first_token_s * 1000, 1)
            if report.time_to_first_token_s is not None
            else None
        )
        log.info(
            "reply %d %s in %.2f s (first token %s ms, %d input + %d output tokens, model %s)",
            report.message_id,
            report.outcome,
            report.duration_s,
            ttft_ms,
            report.input_tokens,
            report.output_tokens,
            self.model,
            extra={
                "event": "reply.end",
                "message_id": report.message_id,
                "model": self.model,
                "outcome": report.outcome,
                "duration_ms": round(report.duration_s * 1000, 1),
                "time_to_first_token_ms": ttft_ms,
                "input_tokens": report.input_tokens,
                "output_tokens": report.output_tokens,
            },
        )


def model_name(provider: str, model: str) -> str:
    """The `model` label: the configured model, or `simulated` for the stand-in."""
    return model if provider == "openai" else "simulated"
