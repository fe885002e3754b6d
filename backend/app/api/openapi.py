"""The OpenAPI document, as FastAPI generates it plus two things it cannot know:

- every `/api` operation needs a bearer JWT: `CallerDep` checks the header itself (one
  dependency per request instead of a stack of them), so the scheme a FastAPI security
  dependency would have declared is declared here;
- the reply streams are described per event (`app/api/sse_schema.py`)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app.api.sse_schema import drop_string_stream_schemas

SCHEME = "HTTPBearer"
BEARER = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "A JWT: `make token SUB=alice` mints one for local development.",
}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = drop_string_stream_schemas(FastAPI.openapi(app))
            schema.setdefault("components", {}).setdefault("securitySchemes", {})[SCHEME] = BEARER
            for path, operations in schema["paths"].items():
                if path.startswith("/api/"):
                    for operation in operations.values():
                        operation["security"] = [{SCHEME: []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
