"""The OpenAPI document's security: every `/api` operation needs a bearer JWT.

`CallerDep` checks the header itself (one dependency per request instead of a stack of them),
so the scheme a FastAPI security dependency would have declared is declared here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

SCHEME = "HTTPBearer"
BEARER = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "A JWT: `make token SUB=alice` mints one for local development.",
}


def install(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()  # FastAPI's own document, cached on the app
            schema.setdefault("components", {}).setdefault("securitySchemes", {})[SCHEME] = BEARER
            for path, operations in schema["paths"].items():
                if path.startswith("/api/"):
                    for operation in operations.values():
                        operation["security"] = [{SCHEME: []}]
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]
