"""Process-wide logging: one line per record, as JSON (for log pipelines) or text (for people).

Every record logged while a request is handled carries that request's id (`request_id`), so a
warning deep in a reply's start can be joined to its access line. Structured fields are passed
with `extra=`; the JSON format emits them as members, the text format shows the message only,
so messages are written to be readable on their own.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import IO, Literal

from pythonjsonlogger.json import JsonFormatter

#: The id of the request being handled by the current task, if any (set by the API's request
#: middleware; tasks started while handling a request inherit it).
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            request_id = request_id_var.get()
            if request_id is not None:
                record.request_id = request_id
        return True


def json_formatter(node_name: str | None = None) -> JsonFormatter:
    static = {"node": node_name} if node_name else None
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        static_fields=static,
    )


def log_handler(
    fmt: Literal["json", "text"], node_name: str | None = None, stream: IO[str] | None = None
) -> logging.Handler:
    """A handler writing one line per record in `fmt`, each with its request id."""
    handler = logging.StreamHandler(stream)
    formatter = json_formatter(node_name) if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter())
    return handler


def configure_logging(
    level: str, fmt: Literal["json", "text"] = "text", node_name: str | None = None
) -> None:
    logging.basicConfig(level=level, handlers=[log_handler(fmt, node_name)], force=True)
    # Uvicorn's own loggers propagate to ours (one format for everything); its access log is
    # replaced by the API's access line, which knows the route and the request id.
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
